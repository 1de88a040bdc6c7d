"""SSS, the sarcopenia segmentation data set: L3 CT slices and their 4-class tissue masks.

Folder layout (what ``lsmseg phantom DIR`` writes, and what users bring)::

    dataset_dir/images/<case_id>.dcm | .nii.gz | .nii   one axial L3 CT slice per file (HU)
    dataset_dir/masks/<case_id>.nii.gz | .nii           Tissue labels 0..3 on the image's grid

A case is named by its file name (without ``.dcm`` / ``.nii.gz``). Ids present in both folders
are pairs; an image without a mask is an x-only row and a mask without an image a y-only row.

Every case goes once through the clinical preprocessing, :func:`lsmseg.transforms.ct_chain`
(``lsmseg.io`` ingest with the quality gate, body crop, HU window, resize to (S, S)); the mask is
cropped and resized with its image (nearest labels). A y-only mask has no CT to find the body on:
a stand-in HU image, soft tissue over the bounding box of its tissue pixels, takes the CT's place
(the same square-box logic; the box is a skin's width tighter, statistically the same crop).
MONAI's ``PersistentDataset`` caches the arrays on disk (``cache_root()/sss-cache``), keyed by
the files (path, mtime, size) and the settings, so a second run reads one small file per case.

:func:`load_sss` splits the pairs by the paper's protocol (section 4.3,
:func:`lsmseg.data.split.supervision_split`); unpaired images and masks already in the folder are
added to the training rows on top of that split (they never enter validation or test, which
need both views). :func:`embedded_phantom` is the default data set of the ``lsm_sss``,
``sop_sss`` and ``ioda_sss`` bundles: a synthetic L3 cohort generated on first use.
:func:`list_images` lists a folder of CT slices for bundle inference.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import PersistentDataset
from monai.transforms import Compose, MapTransform

from lsmseg.data.cache import cache_root, generated_folder
from lsmseg.data.split import SupervisionSplit, UnpairedProtocol, rows_from_split, supervision_split
from lsmseg.errors import fail
from lsmseg.io import read_nifti_slice
from lsmseg.keys import TISSUE_NAMES, Keys, Mode, Tissue
from lsmseg.transforms import DEFAULT_HU_RANGE, chain_key, ct_chain
from lsmseg.transforms.load import case_id_of, read_ct, slice_to_meta

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = tuple(TISSUE_NAMES[t.value] for t in Tissue)  # background first
N_CLASSES = len(CLASS_NAMES)
IMAGE_SUFFIXES = (".dcm", ".dicom", ".ima", ".nii.gz", ".nii")
MASK_SUFFIXES = (".nii.gz", ".nii")
# Bump when the preprocessing changes, so stale cached arrays are not reused.
CACHE_VERSION = 2
__all__ = ["case_id_of", "read_ct"]  # re-exported: the SSS pairing is by file name


# ---------------------------------------------------------------------------------------------
# Finding the cases


@dataclass(frozen=True)
class SSSCase:
    """One case of an SSS folder: its CT file, its mask file, or both."""

    case_id: str
    image: Path | None
    mask: Path | None

    @property
    def mode(self) -> Mode:
        """PAIRED with both files, X_ONLY with an image alone, Y_ONLY with a mask alone."""
        if self.image is not None and self.mask is not None:
            return Mode.PAIRED
        return Mode.X_ONLY if self.image is not None else Mode.Y_ONLY


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """{case_id: file} for the files of ``folder`` ending in ``suffixes`` (hidden files skipped)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not path.name.lower().endswith(suffixes):
            continue
        case_id = case_id_of(path)
        if case_id in found:
            raise ValueError(f"{folder}: case {case_id} has two files, {found[case_id].name} and {path.name}")
        found[case_id] = path
    return found


def scan_sss(dataset_dir: str | Path) -> list[SSSCase]:
    """The cases of an SSS folder, sorted by id.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist.
        ValueError: it has neither ``images/`` nor ``masks/`` with files, or one case has two
            files in one folder (e.g. ``a.dcm`` and ``a.nii.gz``).
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset_dir {root} does not exist")
    images = _files(root / "images", IMAGE_SUFFIXES)
    masks = _files(root / "masks", MASK_SUFFIXES)
    if not images and not masks:
        raise ValueError(
            f"dataset_dir {root} holds no SSS cases: expected images/<case_id>.dcm|.nii.gz and "
            "masks/<case_id>.nii.gz (see 'lsmseg phantom DIR --n N' for an example)"
        )
    ids = sorted(set(images) | set(masks))
    return [SSSCase(i, images.get(i), masks.get(i)) for i in ids]


# ---------------------------------------------------------------------------------------------
# Reading and preprocessing one case


def read_mask(path: str | Path, n_classes: int = N_CLASSES) -> np.ndarray:
    """Read a NIfTI label mask onto the normalised grid of its image (see :class:`CTSlice`).

    The mask shares its image's geometry, so reading it like a CT slice (affine-aware, without
    the HU quality gate) puts both in the same pixel order, whatever the file's axis order.

    Returns:
        (H, W) int64 labels in 0..n_classes-1.

    Raises:
        IngestError: unreadable file; ValueError: values that are not labels 0..n_classes-1.
    """
    return _labels(read_nifti_slice(path, check=False).hu, path, n_classes)


def _labels(values: np.ndarray, path: str | Path, n_classes: int = N_CLASSES) -> np.ndarray:
    """``values`` read from mask file ``path`` as int64 labels, checked to be 0..n_classes-1."""
    labels = np.rint(values)
    if not np.array_equal(labels, values) or labels.min() < 0 or labels.max() >= n_classes:
        found = np.unique(values)
        raise ValueError(
            f"mask {Path(path).name} must hold labels 0..{n_classes - 1} "
            f"({', '.join(CLASS_NAMES[:n_classes])}), found values {found[:8].tolist()}"
        )
    return labels.astype(np.int64)


def stand_in_hu(mask: np.ndarray) -> np.ndarray:
    """(H, W) HU image a mask without its CT is cropped by: 0 HU over its tissue's bounding box.

    Soft tissue (0 HU) over the bounding box of the tissue pixels, air (-1000 HU) elsewhere, so the
    body crop finds the same square as on the CT. The bounding box, not the pixels themselves:
    tissue rings can be thin or broken, and the body finder would keep only their largest piece.
    """
    tissue = np.asarray(mask) != Tissue.BACKGROUND
    hu = np.full(tissue.shape, -1000.0, np.float32)
    if tissue.any():
        rows, cols = np.flatnonzero(tissue.any(axis=1)), np.flatnonzero(tissue.any(axis=0))
        hu[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 0.0
    return hu


class LoadSSSCased(MapTransform):
    """Read a case's CT (``image``) and mask (``label``) paths into (1, H, W) MetaTensors.

    A missing view ("" path) is stood in for: zeros for a missing mask, :func:`stand_in_hu` for a
    missing CT; ``has_image`` / ``has_label`` say which views are real.

    Raises:
        ValueError (IngestError included): unreadable files, a failed quality gate, or a mask off
            its image's grid; the message names the case.
    """

    def __init__(self) -> None:
        super().__init__([Keys.IMAGE, Keys.LABEL])

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case_id, image_path, mask_path = d[Keys.CASE_ID], d[Keys.IMAGE], d[Keys.LABEL]
        try:
            mask = read_nifti_slice(mask_path, case_id, check=False) if mask_path else None
            labels = _labels(mask.hu, mask_path) if mask is not None else None
            if image_path:
                ct = read_ct(image_path, case_id)
                hu = ct.hu
                if labels is not None and labels.shape != hu.shape:
                    raise ValueError(
                        f"mask {Path(mask_path).name} has shape {labels.shape} but its image "
                        f"{Path(image_path).name} has shape {hu.shape}: a mask must be on its image's grid"
                    )
            else:
                assert mask is not None and labels is not None  # a case has at least one file
                ct, hu = mask, stand_in_hu(labels)
        except ValueError as err:  # IngestError is a ValueError
            raise ValueError(f"case {case_id}: {err}") from err
        d[Keys.IMAGE] = slice_to_meta(ct, hu)
        d[Keys.LABEL] = slice_to_meta(ct, np.zeros_like(hu) if labels is None else labels)
        d["has_image"], d["has_label"] = bool(image_path), labels is not None
        return d


def sss_chain(image_size: int = 128, hu_range: Sequence[float] = DEFAULT_HU_RANGE) -> Compose:
    """What a case goes through: :class:`LoadSSSCased`, then :func:`ct_chain` with its mask.

    The bundles write the same chain out as train.json's ``preprocessing``.
    """
    return Compose([LoadSSSCased(), *ct_chain(image_size, hu_range, label_key=Keys.LABEL).transforms])


def case_arrays(
    cases: Sequence[SSSCase], preprocessing: Compose
) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """{case_id: (image (1, S, S) float32 in [0, 1], mask (1, S, S) int64)}, a missing view None.

    Preprocessed by ``preprocessing`` (e.g. :func:`sss_chain`) through a ``PersistentDataset``
    keyed by the files (path, mtime, size) and the chain's settings (:func:`chain_key`), so a
    changed file or setting gets a new entry.
    """
    settings = chain_key(preprocessing)
    items = []
    for case in cases:
        stamps = [
            [str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size] if p else None
            for p in (case.image, case.mask)
        ]
        items.append(
            {
                Keys.CASE_ID: case.case_id,
                Keys.IMAGE: str(case.image or ""),
                Keys.LABEL: str(case.mask or ""),
                "cache_key": [CACHE_VERSION, settings, stamps],
            }
        )
    dataset = PersistentDataset(items, preprocessing, cache_dir=cache_root() / "sss-cache")
    arrays = {}
    for index in range(len(dataset)):
        try:
            item = dataset[index]
        except RuntimeError as err:  # MONAI wraps a transform's error: give the user's message back
            cause = err.__cause__
            while isinstance(cause, RuntimeError) and cause.__cause__ is not None:
                cause = cause.__cause__
            raise (cause if isinstance(cause, (OSError, ValueError)) else err) from None
        image = np.asarray(item[Keys.IMAGE].numpy(), np.float32) if item["has_image"] else None
        mask = np.asarray(item[Keys.LABEL].numpy().round(), np.int64) if item["has_label"] else None
        arrays[str(item[Keys.CASE_ID])] = (image, mask)
    return arrays


# ---------------------------------------------------------------------------------------------
# Rows


def load_sss(
    dataset_dir: str | Path,
    proportion: float = 1.0,
    seed: int = 0,
    image_size: int = 128,
    hu_range: Sequence[float] = DEFAULT_HU_RANGE,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    preprocessing: Compose | None = None,
    unpaired: UnpairedProtocol = "disjoint",
) -> dict[str, list[dict]]:
    """Read an SSS folder and make training, validation and test rows.

    The pairs (sorted by case id) are split by the paper's protocol: sequential
    train / valid / test (``fractions``), then a proportion p of the training pairs kept paired
    and the rest halved into x-only and y-only rows (:func:`supervision_split`). Images without a
    mask and masks without an image already in the folder are added to the training rows as
    x-only / y-only rows on top of that split, whatever p.

    Args:
        dataset_dir: folder with ``images/`` and ``masks/`` (see the module docstring).
        proportion: fraction p of the training pairs kept paired, 0 < p <= 1.
        seed: which training pairs stay paired.
        image_size: S, side of the network input (pixels), for the default preprocessing.
        hu_range: HU window mapped to [0, 1], for the default preprocessing.
        fractions: train, valid, test fractions of the pairs.
        preprocessing: the chain each case goes through; default :func:`sss_chain`.
        unpaired: how the unpaired training pairs give x-only and y-only rows, ``disjoint``
            halves or ``shared`` (:func:`supervision_split`).

    Returns:
        {"train", "valid", "test"}: lists of rows ``{"image": (1, S, S) float32 in [0, 1],
        "label": (1, S, S) int64 Tissue labels, "mode": int Mode, "case_id": str}``; the view a
        row hides is zero-filled.

    Raises:
        FileNotFoundError / ValueError: a missing folder, fewer than 3 pairs, or a case that
            cannot be read (the message names the case; training data fails early).
    """
    preprocessing = preprocessing or sss_chain(image_size, hu_range)
    cases = scan_sss(dataset_dir)
    pairs = [c for c in cases if c.mode == Mode.PAIRED]
    if len(pairs) < 3:
        raise ValueError(
            f"dataset_dir {dataset_dir} has {len(pairs)} image/mask pair(s) (same file name in "
            "images/ and masks/): need at least 3 for a train/valid/test split"
        )
    arrays = case_arrays(cases, preprocessing)
    rows = _rows(cases, pairs, arrays, supervision_split(len(pairs), proportion, seed, fractions, unpaired))
    logger.info(
        f"SSS {dataset_dir}: {len(pairs)} pairs, {len(cases) - len(pairs)} unpaired files; rows train "
        f"{len(rows['train'])}, valid {len(rows['valid'])}, test {len(rows['test'])}"
    )
    return rows


def _rows(
    cases: list[SSSCase],
    pairs: list[SSSCase],
    arrays: dict[str, tuple[np.ndarray | None, np.ndarray | None]],
    split: SupervisionSplit,
) -> dict[str, list[dict]]:
    """Rows of the split of ``pairs``, plus the unpaired cases as training rows (see load_sss)."""
    shape = next(a.shape for views in arrays.values() for a in views if a is not None)  # (1, S, S)
    zero_x, zero_y = np.zeros(shape, np.float32), np.zeros(shape, np.int64)

    def row(case: SSSCase, mode: Mode) -> dict:
        image, mask = arrays[case.case_id]
        return {
            Keys.IMAGE: image if mode.has_x and image is not None else zero_x,
            Keys.LABEL: mask if mode.has_y and mask is not None else zero_y,
            Keys.MODE: int(mode),
            Keys.CASE_ID: case.case_id,
        }

    rows = rows_from_split(split, lambda i, mode: row(pairs[i], mode))
    rows["train"] += [row(c, c.mode) for c in cases if c.mode != Mode.PAIRED]
    return rows


def load_rows(
    dataset_dir: str | Path,
    proportion: float = 1.0,
    seed: int = 0,
    preprocessing: Compose | None = None,
    unpaired: UnpairedProtocol = "disjoint",
) -> dict[str, list[dict]]:
    """:func:`load_sss` for bundle configs: bad data ends the run with one line, no traceback."""
    try:
        return load_sss(dataset_dir, proportion, seed, preprocessing=preprocessing, unpaired=unpaired)
    except (OSError, ValueError) as err:
        fail(str(err))


# ---------------------------------------------------------------------------------------------
# The embedded data set and inference inputs


def embedded_phantom(n: int = 60, seed: int = 0) -> str:
    """Path of a synthetic L3 cohort (:func:`lsmseg.data.phantom.write_cohort`, NIfTI, 512x512).

    Generated on first use under :func:`cache_root`, whole or not at all
    (:func:`lsmseg.data.cache.generated_folder`); about 0.15 s per case.
    """
    from lsmseg.data.phantom import write_cohort  # the generator is large; most runs never need it

    def build(folder: Path) -> None:
        logger.info(f"generating the embedded L3 phantom ({n} cases)")
        write_cohort(folder, n, fmt="nifti", seed=seed)

    return str(generated_folder(f"sss-phantom-n{n}-s{seed}-v1", build))


def list_images(folder: str | Path) -> list[dict[str, str]]:
    """Inference rows ``{"image": path, "case_id": id}`` for the CT files of ``folder/images``
    (an SSS folder) or of ``folder`` itself, sorted by id.

    Raises:
        FileNotFoundError / ValueError: no such folder, or no .dcm / .nii.gz file in it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist")
    images_dir = root / "images" if (root / "images").is_dir() else root
    images = _files(images_dir, IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{images_dir} holds no CT slices (.dcm, .nii.gz or .nii files)")
    return [{Keys.IMAGE: str(path), Keys.CASE_ID: case_id} for case_id, path in sorted(images.items())]
