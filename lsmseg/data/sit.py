"""SIT, the synthetic image translation data set of the LSM paper (appendix A.1).

x is a ring of one texture drawn on a canvas of another texture (same random crop offset for
both); y is a binary ring mask drawn with the ring parameters permuted (d, c, b, a), so the
target is not the ring itself and the task is a translation, not a segmentation. The paper uses
Brodatz D17 / D77; no package ships those, so the defaults are scikit-image's brick (ring) and
gravel (canvas) textures, and any two grayscale images can be given by path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmseg.data.cache import cache_root, generated_folder
from lsmseg.data.split import UnpairedProtocol, rows_from_split, supervision_split
from lsmseg.keys import Keys, Mode

__all__ = [
    "SIT_SIZE",
    "cache_root",  # re-exported: lsmseg.data.cache is its home
    "embedded_sit",
    "generate_sit",
    "load_sit",
    "make_rows",
    "read_sit_folder",
    "ring",
    "write_sit_folder",
]

SIT_SIZE = 128


def _texture(source: str | Path | np.ndarray | None, default: str) -> np.ndarray:
    """A grayscale texture as float32 in [0, 1]: a scikit-image texture name, a path or an array."""
    if isinstance(source, np.ndarray):
        img = source
    elif source is None or (isinstance(source, str) and source in ("brick", "grass", "gravel")):
        import skimage.data

        img = getattr(skimage.data, str(source or default))()
    else:
        import skimage.io

        img = skimage.io.imread(str(source), as_gray=True)
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"texture must be a grayscale image, got shape {img.shape}")
    return (img - img.min()) / max(float(img.max() - img.min()), 1e-6)


def ring(size: int, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Boolean (size, size) ring: centre (40 + 48a, 40 + 48b), inner radius 10 + 20c, thickness 5 + 25d.

    The constants are the paper's for 128x128 images; other sizes scale them.
    """
    s = size / SIT_SIZE
    cy, cx = (40 + 48 * a) * s, (40 + 48 * b) * s
    r, t = (10 + 20 * c) * s, int((5 + 25 * d) * s)
    # The reference draws a circle of radius r + t // 2 with line thickness t: an annulus [r, r + t).
    yy, xx = np.mgrid[:size, :size]
    dist = np.hypot(yy - cy, xx - cx)
    return (dist >= r) & (dist < r + t)


def generate_sit(
    n: int = 500,
    size: int = SIT_SIZE,
    seed: int = 0,
    ring_texture: str | Path | np.ndarray | None = None,
    canvas_texture: str | Path | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate SIT pairs.

    Returns:
        x: (n, 1, size, size) float32 in [0, 1]; y: (n, 1, size, size) int64 ring mask {0, 1}.
    """
    fg, bg = _texture(ring_texture, "brick"), _texture(canvas_texture, "gravel")
    h, w = min(fg.shape[0], bg.shape[0]), min(fg.shape[1], bg.shape[1])
    if h < size or w < size:
        raise ValueError(f"textures must be at least {size}x{size}, got {fg.shape} and {bg.shape}")
    rng = np.random.default_rng(seed)
    xs = np.empty((n, 1, size, size), np.float32)
    ys = np.empty((n, 1, size, size), np.int64)
    for i in range(n):
        a, b, c, d = rng.random(4)
        oy, ox = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        mask_x = ring(size, a, b, c, d)
        xs[i, 0] = np.where(mask_x, fg[oy : oy + size, ox : ox + size], bg[oy : oy + size, ox : ox + size])
        ys[i, 0] = ring(size, d, c, b, a)
    return xs, ys


def write_sit_folder(folder: str | Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write pairs as ``{i}_x_numpy.npy`` / ``{i}_y_numpy.npy`` (float32 (H, W)), the reference layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(x)):
        np.save(folder / f"{i}_x_numpy.npy", x[i, 0].astype(np.float32))
        np.save(folder / f"{i}_y_numpy.npy", y[i, 0].astype(np.float32))


def read_sit_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an existing SIT folder: x (N, 1, H, W) float32, y (N, 1, H, W) int64.

    Raises:
        FileNotFoundError / ValueError: the folder is missing, empty or has unmatched files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset_dir {folder} does not exist")
    ids = sorted(int(p.name.split("_")[0]) for p in folder.glob("*_x_numpy.npy"))
    if not ids:
        raise ValueError(f"dataset_dir {folder} holds no SIT pairs ({{i}}_x_numpy.npy / {{i}}_y_numpy.npy)")
    missing = [i for i in ids if not (folder / f"{i}_y_numpy.npy").exists()]
    if missing:
        raise ValueError(f"dataset_dir {folder}: no y for x of id(s) {missing[:5]}")
    x = np.stack([np.load(folder / f"{i}_x_numpy.npy") for i in ids])[:, None].astype(np.float32)
    y = np.stack([np.load(folder / f"{i}_y_numpy.npy") for i in ids])[:, None]
    return x, (y > 0.5).astype(np.int64)


def embedded_sit(n: int = 500, seed: int = 0) -> str:
    """Path of the embedded SIT set (``n`` pairs at 128x128), generated on first use under
    :func:`lsmseg.data.cache.cache_root` (see :func:`~lsmseg.data.cache.generated_folder`)."""
    return str(
        generated_folder(
            f"sit-n{n}-s{seed}-v1", lambda tmp: write_sit_folder(tmp, *generate_sit(n, seed=seed))
        )
    )


def make_rows(
    x: np.ndarray,
    y: np.ndarray,
    proportion: float,
    seed: int = 0,
    fractions: tuple[float, ...] = (0.7, 0.1, 0.2),
    unpaired: UnpairedProtocol = "disjoint",
) -> dict[str, list[dict]]:
    """Rows for training (paired / x-only / y-only, hidden views zero-filled), validation and test.

    ``unpaired`` is the protocol of :func:`~lsmseg.data.split.supervision_split`.

    Returns:
        {"train": [...], "valid": [...], "test": [...]}; each row a dict with ``image``
        (1, H, W) float32, ``label`` (1, H, W) int64 and ``mode`` (int Mode).
    """
    split = supervision_split(len(x), proportion, seed, fractions, unpaired)
    zero_x, zero_y = np.zeros_like(x[0]), np.zeros_like(y[0])

    def row(i: int, mode: Mode) -> dict:
        return {
            Keys.IMAGE: x[i] if mode.has_x else zero_x,
            Keys.LABEL: y[i] if mode.has_y else zero_y,
            Keys.MODE: int(mode),
        }

    return rows_from_split(split, row)


def load_sit(
    dataset_dir: str | Path, proportion: float = 1.0, seed: int = 0, unpaired: UnpairedProtocol = "disjoint"
) -> dict[str, list[dict]]:
    """Read a SIT folder and split it by the paper's protocol (see :func:`make_rows`)."""
    x, y = read_sit_folder(dataset_dir)
    return make_rows(x, y, proportion, seed, unpaired=unpaired)
