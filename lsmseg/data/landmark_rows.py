"""Rows of the 300-W landmark experiment: face images (domain X) and their 68 landmarks (domain Y).

Three kinds of ``dataset_dir`` are read, detected from their contents:

- a 300-W layout (``01_Indoor/indoor_XXX.png`` + ``.pts``, ``02_Outdoor/...``, directly or one
  folder down), preprocessed on the fly with ``w300.preprocess_face`` (square landmark crop,
  64x64, landmarks in [0, 1]);
- a folder written by ``data_prep/prepare_300w.py``: ``images.npy`` (N, 3, S, S) float32 and
  ``landmarks.npy`` (N, 136) float32, both in [0, 1] (and ``ids.txt``, optional);
- for inference only, a plain folder of face crops (``.png`` / ``.jpg``).

The embedded default (``embedded_faces``) is a synthetic set written in the 300-W layout, so the
reader path of real data is the one the default run exercises.

Rows are dicts ``{"image": (3, S, S) float32, "landmarks": (136,) float32, "mode": int Mode}``;
the hidden view of an unpaired row is zero-filled (the engine masks every term that reads it).
The split is the 300-W one of the reference implementation: sequential 60 / 20 / 20 train / valid
/ test (indoor faces first), then the paper's proportion protocol on the training part
(``split.supervision_split``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from lsmseg.data.cache import generated_folder
from lsmseg.data.faces import write_300w_layout
from lsmseg.data.split import rows_from_split, supervision_split
from lsmseg.data.w300 import (
    IMAGE_SIZE,
    N_POINTS,
    as_rgb_float,
    find_300w_pairs,
    load_300w,
    preprocess_face,
    read_pts,
    square_crop_box,
)
from lsmseg.errors import fail
from lsmseg.keys import Keys, Mode

LANDMARKS = "landmarks"  # name of the landmark domain and its key in rows and batches
W300_FRACTIONS = (0.6, 0.2, 0.2)  # train / valid / test of the reference's 300-W experiment
PREPARED_FILES = ("images.npy", "landmarks.npy")  # what data_prep/prepare_300w.py writes
NAME, ORIGIN, EXTENT = "name", "origin", "extent"  # inference row keys (see ``face_inputs``)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _is_prepared(folder: Path) -> bool:
    return all((folder / f).is_file() for f in PREPARED_FILES)


def _require_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset_dir {folder} does not exist (omit --dataset_dir to use the embedded synthetic faces)"
        )
    if not any(folder.iterdir()):
        raise ValueError(
            f"dataset_dir {folder} is empty (omit --dataset_dir to use the embedded synthetic faces)"
        )


def read_prepared(folder: str | Path, image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Read ``images.npy`` / ``landmarks.npy`` written by ``data_prep/prepare_300w.py``.

    Returns:
        images (N, 3, S, S) float32 in [0, 1]; landmarks (N, 136) float32 in [0, 1], interleaved (x, y).

    Raises:
        ValueError: shapes that do not fit the experiment (wrong crop size, count mismatch ...).
    """
    folder = Path(folder)
    images = np.load(folder / PREPARED_FILES[0]).astype(np.float32, copy=False)
    landmarks = np.load(folder / PREPARED_FILES[1]).astype(np.float32, copy=False)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (image_size, image_size):
        raise ValueError(
            f"{folder / PREPARED_FILES[0]} holds shape {images.shape}, expected (N, 3, {image_size}, "
            f"{image_size}): rerun data_prep/prepare_300w.py --size {image_size} or set --image_size"
        )
    if landmarks.shape != (len(images), 2 * N_POINTS):
        raise ValueError(
            f"{folder / PREPARED_FILES[1]} holds shape {landmarks.shape}, expected ({len(images)}, "
            f"{2 * N_POINTS}) to match {len(images)} images"
        )
    return images, landmarks


def landmark_layout(dataset_dir: str | Path) -> Literal["prepared", "300w"]:
    """Which landmark layout a folder holds: ``prepared`` (``images.npy`` + ``landmarks.npy``) or ``300w``.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: the folder is empty or holds neither layout.
    """
    folder = Path(dataset_dir)
    _require_folder(folder)
    if _is_prepared(folder):
        return "prepared"
    if find_300w_pairs(folder):
        return "300w"
    raise ValueError(
        f"dataset_dir {folder} holds neither a 300-W layout (01_Indoor/indoor_XXX.png with .pts, "
        f"02_Outdoor/...) nor {' + '.join(PREPARED_FILES)} from data_prep/prepare_300w.py"
    )


def check_landmark_dir(dataset_dir: str | Path) -> str:
    """Bundle check before any work: a missing, empty or unreadable folder ends the run with one line."""
    try:
        landmark_layout(dataset_dir)
    except (OSError, ValueError) as err:
        fail(str(err))
    return str(dataset_dir)


def read_landmark_folder(
    dataset_dir: str | Path, image_size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Images and landmarks of a 300-W layout or a prepared folder (``landmark_layout``).

    Returns:
        images (N, 3, S, S) float32 in [0, 1]; landmarks (N, 136) float32 in [0, 1], interleaved
        (x0, y0, x1, y1, ...) as fractions of the square face crop.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: the folder is empty, holds neither layout, or arrays of the wrong shape.
    """
    if landmark_layout(dataset_dir) == "prepared":
        return read_prepared(dataset_dir, image_size)
    return load_300w(dataset_dir, image_size)


def make_landmark_rows(
    images: np.ndarray,
    landmarks: np.ndarray,
    proportion: float,
    seed: int = 0,
    fractions: tuple[float, float, float] = W300_FRACTIONS,
) -> dict[str, list[dict]]:
    """Split faces by the paper's protocol into training (paired / image-only / landmarks-only),
    validation and test rows.

    Args:
        images: (N, 3, S, S) float32 in [0, 1].
        landmarks: (N, 136) float32 in [0, 1].
        proportion: fraction of the training faces kept paired, 0 < p <= 1.
        seed: which training faces stay paired and how the rest is halved.
        fractions: train / valid / test fractions (300-W reference: 0.6 / 0.2 / 0.2).

    Returns:
        {"train": [...], "valid": [...], "test": [...]}, rows ``{"image", "landmarks", "mode"}``.
    """
    if len(images) != len(landmarks):
        raise ValueError(f"{len(images)} images but {len(landmarks)} landmark rows")
    split = supervision_split(len(images), proportion, seed, fractions)
    zero_image, zero_landmarks = np.zeros_like(images[0]), np.zeros_like(landmarks[0])

    def row(i: int, mode: Mode) -> dict:
        return {
            Keys.IMAGE: images[i] if mode.has_x else zero_image,
            LANDMARKS: landmarks[i] if mode.has_y else zero_landmarks,
            Keys.MODE: int(mode),
        }

    return rows_from_split(split, row)


def load_landmark_rows(
    dataset_dir: str | Path, proportion: float = 1.0, seed: int = 0, image_size: int = IMAGE_SIZE
) -> dict[str, list[dict]]:
    """Read a landmark data set (300-W layout or prepared arrays) and split it (``make_landmark_rows``)."""
    images, landmarks = read_landmark_folder(dataset_dir, image_size)
    return make_landmark_rows(images, landmarks, proportion, seed)


def embedded_faces(n: int = 600, seed: int = 0) -> str:
    """Path of the embedded synthetic face set (300-W layout), generated on first use.

    600 faces by default, as 300-W (300 indoor + 300 outdoor), under
    :func:`lsmseg.data.cache.cache_root` (see :func:`~lsmseg.data.cache.generated_folder`).
    """
    return str(generated_folder(f"faces300w-n{n}-s{seed}-v1", lambda tmp: write_300w_layout(tmp, n, seed)))


# --- inference ---------------------------------------------------------------------------------


def _resize_rgb(image: np.ndarray, image_size: int) -> np.ndarray:
    """(H, W[, 3|4]) image -> (3, S, S) float32 in [0, 1], resized (anisotropically if not square)."""
    from skimage.transform import resize

    rgb = as_rgb_float(image)  # (H, W, 3) in [0, 1]
    anti_alias = max(rgb.shape[:2]) > image_size
    small = resize(rgb, (image_size, image_size), order=1, anti_aliasing=anti_alias, preserve_range=True)
    return np.clip(small, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)


def face_inputs(folder: str | Path, image_size: int = IMAGE_SIZE) -> list[dict]:
    """Inference rows for the faces of a folder, each with where its crop lies in the source image.

    - 300-W layout: each face is cropped to the square box of its ``.pts`` landmarks, the paper's
      protocol (the box needs the annotation; for new photographs, crop the faces first);
    - plain folder of ``.png`` / ``.jpg`` face crops: the whole image is the crop, resized to
      S x S (anisotropically when not square);
    - prepared folder (``images.npy``): the 64x64 crops themselves.

    Returns:
        rows ``{"image": (3, S, S) float32, "name": str, "origin": (2,) float32 (x0, y0),
        "extent": (2,) float32 (width, height)}``: the crop covers source pixels
        ``[x0 - 0.5, x0 + width - 0.5) x [y0 - 0.5, y0 + height - 0.5)`` (see ``to_pixels``).

    Raises:
        FileNotFoundError / ValueError: missing folder, or no face in it.
    """
    folder = Path(folder)
    _require_folder(folder)
    if _is_prepared(folder):
        rows = _prepared_inputs(folder, image_size)
    elif find_300w_pairs(folder):
        rows = _300w_inputs(folder, image_size)
    else:
        rows = _photo_inputs(folder, image_size)
    if not rows:
        raise ValueError(
            f"no faces in {folder}: expected .png/.jpg face crops, a 300-W layout (01_Indoor/...) "
            f"or {' + '.join(PREPARED_FILES)}"
        )
    return rows


def _input_row(
    name: str, image: np.ndarray, origin: tuple[float, float], extent: tuple[float, float]
) -> dict:
    """One inference row: the (3, S, S) crop, its name, and where it lies in the source (pixels)."""
    return {
        Keys.IMAGE: image,
        NAME: name,
        ORIGIN: np.asarray(origin, np.float32),
        EXTENT: np.asarray(extent, np.float32),
    }


def _prepared_inputs(folder: Path, image_size: int) -> list[dict]:
    """The crops of ``images.npy``, named by ``ids.txt`` when it matches, else ``face_0000`` ..."""
    images, _ = read_prepared(folder, image_size)
    ids_file = folder / "ids.txt"
    ids = ids_file.read_text(encoding="utf-8").split() if ids_file.is_file() else []
    if len(ids) != len(images):
        ids = [f"face_{i:04d}" for i in range(len(images))]
    side = float(image_size)
    return [
        _input_row(name, image, (0.0, 0.0), (side, side)) for name, image in zip(ids, images, strict=True)
    ]


def _300w_inputs(folder: Path, image_size: int) -> list[dict]:
    """Each 300-W face cropped to the square box of its ``.pts`` landmarks (the paper's protocol)."""
    from skimage.io import imread

    rows = []
    for image_path, pts_path in find_300w_pairs(folder):
        points = read_pts(pts_path)
        x0, y0, side = square_crop_box(points)
        image, _ = preprocess_face(imread(image_path), points, image_size)
        rows.append(_input_row(image_path.stem, image, (float(x0), float(y0)), (float(side), float(side))))
    return rows


def _photo_inputs(folder: Path, image_size: int) -> list[dict]:
    """Every ``.png`` / ``.jpg`` of the folder as a whole-image crop, resized to S x S."""
    from skimage.io import imread

    rows = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
        image = imread(path)
        extent = (float(image.shape[1]), float(image.shape[0]))
        rows.append(_input_row(path.stem, _resize_rgb(image, image_size), (0.0, 0.0), extent))
    return rows


def to_pixels(landmarks: np.ndarray, origin: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Normalised landmarks (136,) in [0, 1] -> (68, 2) 0-based (x, y) pixels of the source image.

    Inverse of ``w300.preprocess_face``: u = (p - (origin - 0.5)) / extent, so
    p = u * extent + origin - 0.5 (pixel i covers [i - 0.5, i + 0.5)).
    """
    u = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)  # (68, 2) (x, y) fractions of the crop
    return u * np.asarray(extent, np.float64) + np.asarray(origin, np.float64) - 0.5
