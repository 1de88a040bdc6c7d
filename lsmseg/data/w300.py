"""300-W faces: ``.pts`` reading and writing, folder discovery and the 64x64 crop of the LSM paper.

300-W (Sagonas et al. 2013/2016) ships 300 indoor and 300 outdoor faces::

    01_Indoor/indoor_001.png  01_Indoor/indoor_001.pts  ...
    02_Outdoor/outdoor_001.png  02_Outdoor/outdoor_001.pts  ...

Each ``.pts`` holds 68 points in the iBUG layout (``IBUG_68``), 1-based pixel coordinates. In
memory, points are (68, 2) arrays of 0-based (x, y) = (column, row) pixel coordinates; the
readers and writers here convert.

Preprocessing (LSM paper, section 4.2): crop the landmark bounding box made square around its
centre, resize to 64x64, express the landmarks in the crop as fractions of its side, in [0, 1].
Coordinates are continuous, pixel i covering [i - 0.5, i + 0.5): a normalised landmark u lies at
pixel ``u * 64 - 0.5`` of the 64x64 image (u = 0 and u = 1 are the crop's outer edges).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from skimage.transform import resize

N_POINTS = 68
IMAGE_SIZE = 64  # side of the preprocessed face image, pixels

# The iBUG 68-point layout, 0-based; "right" and "left" are the subject's (image left and right).
IBUG_68: dict[str, range] = {
    "jaw": range(0, 17),  # image left ear level -> chin (8) -> image right
    "right_eyebrow": range(17, 22),  # outer -> inner
    "left_eyebrow": range(22, 27),  # inner -> outer
    "nose_bridge": range(27, 31),  # top -> tip (30)
    "nostrils": range(31, 36),  # image left -> right, 33 below the tip
    "right_eye": range(36, 42),  # 36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid
    "left_eye": range(42, 48),  # 42 inner corner, 43-44 upper lid, 45 outer corner, 46-47 lower lid
    "outer_lips": range(48, 60),  # 48 left corner, 51 top centre, 54 right corner, 57 bottom centre
    "inner_lips": range(60, 68),  # 60 left corner, 62 top, 64 right corner, 66 bottom
}

_SUBSETS = (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor"))
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_pts(path: str | Path, n_points: int = N_POINTS) -> np.ndarray:
    """Read a 300-W / iBUG ``.pts`` file into (n_points, 2) float64 0-based (x, y) pixel coordinates.

    The format is ``version: 1``, ``n_points: 68``, ``{``, one ``x y`` line per point, ``}``, with
    1-based coordinates. CRLF line ends, blank lines, extra whitespace and ``#`` / ``//`` comments
    are tolerated; a file without braces is read as header lines then point lines.

    Raises:
        ValueError: when the file declares or holds another number of points than ``n_points``,
            or a point line is not two numbers.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    declared: int | None = None
    rows: list[tuple[float, float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"#|//", raw, maxsplit=1)[0].strip()
        if not line or line in "{}":
            continue
        if ":" in line:
            key, _, value = line.partition(":")
            if key.strip().lower() == "n_points":
                declared = int(value.strip())
            continue
        fields = line.split()
        bad_line = ValueError(f"{path}, line {number}: expected 'x y', got {raw.strip()!r}")
        if len(fields) != 2:
            raise bad_line
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except ValueError:
            raise bad_line from None
    if declared is not None and declared != len(rows):
        raise ValueError(f"{path}: header says n_points: {declared} but the file holds {len(rows)} points")
    if len(rows) != n_points:
        raise ValueError(
            f"{path}: holds {len(rows)} points, expected {n_points} (the 68-point iBUG layout of 300-W)"
        )
    return np.asarray(rows, dtype=np.float64) - 1.0  # 1-based file -> 0-based in memory


def write_pts(path: str | Path, points: np.ndarray) -> None:
    """Write (N, 2) 0-based (x, y) pixel coordinates as a ``.pts`` file (1-based, as 300-W stores them)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2) (x, y) coordinates, got shape {points.shape}")
    lines = ["version: 1", f"n_points: {len(points)}", "{"]
    lines += [f"{x + 1.0:.4f} {y + 1.0:.4f}" for x, y in points]
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _subset_dirs(root: Path) -> list[tuple[Path, str]]:
    """The 01_Indoor / 02_Outdoor folders under ``root`` or one level below (e.g. ``root/300W``)."""
    for base in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        found = [(base / folder, prefix) for folder, prefix in _SUBSETS if (base / folder).is_dir()]
        if found:
            return found
    return []


def find_300w_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, pts) path pairs of a 300-W folder: indoor then outdoor, each by face number.

    ``root`` holds ``01_Indoor`` and ``02_Outdoor`` (directly or one folder down, as the archive
    unpacks). Images are ``.png`` or ``.jpg``; an image without its ``.pts`` is skipped with a
    warning. Returns an empty list when nothing matches.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"300-W root {root} is not a folder")
    pairs: list[tuple[Path, Path]] = []
    for folder, prefix in _subset_dirs(root):
        numbered: list[tuple[int, Path, Path]] = []
        pattern = re.compile(rf"{prefix}_(\d+)$", re.IGNORECASE)
        for image in folder.iterdir():
            match = pattern.match(image.stem)
            if image.suffix.lower() not in _IMAGE_SUFFIXES or match is None:
                continue
            pts = image.with_suffix(".pts")
            if not pts.is_file():
                warnings.warn(f"{image} has no {pts.name}: skipped", stacklevel=2)
                continue
            numbered.append((int(match.group(1)), image, pts))
        pairs += [(image, pts) for _, image, pts in sorted(numbered)]
    return pairs


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) uint8 / float image -> (H, W, 3) float64 in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / float(np.iinfo(image.dtype).max)
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def square_crop_box(points: np.ndarray) -> tuple[int, int, int]:
    """Integer square crop (x0, y0, side) around the landmark bounding box of (N, 2) points.

    The box is centred on the bounding box (to half a pixel) and its side is the larger extent
    plus one pixel, rounded up, so every landmark lies inside the crop's outer edges.
    """
    lo, hi = points.min(axis=0), points.max(axis=0)
    side = int(np.ceil((hi - lo).max())) + 1
    x0, y0 = (np.round((lo + hi) / 2.0 - (side - 1) / 2.0)).astype(int)
    return int(x0), int(y0), side


def preprocess_face(
    image: np.ndarray,
    points: np.ndarray,
    size: int = IMAGE_SIZE,
    pad_mode: Literal["edge", "constant"] = "edge",
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a face to its square landmark box and resize it (the 300-W preprocessing of the paper).

    Args:
        image: (H, W, 3) RGB (uint8, or float in [0, 1]); grey (H, W) and RGBA are accepted.
        points: (68, 2) 0-based (x, y) pixel coordinates, as ``read_pts`` returns them.
        size: output side in pixels (64 in the paper).
        pad_mode: how to fill where the square leaves the image: repeat the border ("edge") or
            black ("constant").

    Returns:
        image: (3, size, size) float32 in [0, 1].
        landmarks: (2 * 68,) float32 in [0, 1], interleaved (x0, y0, x1, y1, ...), each point's
            position in the crop as a fraction of its side: ``(p - (crop_origin - 0.5)) / side``.
    """
    rgb = as_rgb_float(image)
    points = np.asarray(points, dtype=np.float64)
    x0, y0, side = square_crop_box(points)
    crop = rgb[max(y0, 0) : max(y0 + side, 0), max(x0, 0) : max(x0 + side, 0)]
    before = np.clip([-y0, -x0], 0, side)
    pads = [(b, side - n - b) for b, n in zip(before, crop.shape[:2], strict=True)] + [(0, 0)]
    if crop.size == 0:  # the square lies wholly outside the image: no border to repeat
        pad_mode = "constant"
    crop = np.pad(crop, pads, mode=pad_mode)  # (side, side, 3)
    small = resize(crop, (size, size), order=1, anti_aliasing=side > size, preserve_range=True)
    landmarks = (points - (np.array([x0, y0]) - 0.5)) / side  # (68, 2) in [0, 1]
    return (
        np.clip(small, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32),  # (3, size, size)
        np.clip(landmarks, 0.0, 1.0).reshape(-1).astype(np.float32),  # (136,) x0, y0, x1, y1, ...
    )


def load_300w(root: str | Path, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Read and preprocess every face of a 300-W folder (see ``find_300w_pairs``).

    Returns:
        images: (N, 3, size, size) float32 in [0, 1].
        landmarks: (N, 136) float32 in [0, 1], interleaved (x, y).

    Raises:
        FileNotFoundError: when the folder holds no image / ``.pts`` pair.
    """
    from skimage.io import imread

    pairs = find_300w_pairs(root)
    if not pairs:
        raise FileNotFoundError(
            f"no 300-W faces under {root}: expected 01_Indoor/indoor_XXX.png and .pts "
            "(and 02_Outdoor/outdoor_XXX...)"
        )
    faces = [preprocess_face(imread(image), read_pts(pts), size) for image, pts in pairs]
    return np.stack([f[0] for f in faces]), np.stack([f[1] for f in faces])
