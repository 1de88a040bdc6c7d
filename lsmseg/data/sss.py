"""SSS, the sarcopenia segmentation data set: L3 CT slices and their 4-class tissue masks.

Folder layout (what ``lsmseg phantom DIR`` writes, and what users bring)::

    dataset_dir/images/<case_id>.dcm | .nii.gz | .nii   one axial L3 CT slice per file (HU)
    dataset_dir/masks/<case_id>.nii.gz | .nii           Tissue labels 0..3 on the image's grid

A case is named by its file name (without ``.dcm`` / ``.nii.gz``). Ids present in both folders
are pairs; an image without a mask is an x-only row and a mask without an image a y-only row.

Every case is preprocessed once as the clinical path does it (``lsmseg.io`` ingest with the
quality gate, then :class:`lsmseg.transforms.CropWindowResize`): body crop, HU window, resize to
(S, S). The mask is cut with the same box and resized with nearest labels. A y-only mask has no
CT to find the body on, so its own tissue pixels stand in for the body (the same square-box
logic; the box is a skin's width tighter, statistically the same crop). The arrays are cached
on disk (``cache_root()/sss-cache``), keyed by the files (path, mtime, size) and the settings,
so a second run reads one small ``.npz`` per case.

:func:`load_sss` splits the pairs by the paper's protocol (section 4.3,
:func:`lsmseg.data.split.supervision_split`); unpaired images and masks already in the folder are
added to the training rows on top of that split (they never enter validation or test, which
need both views). :func:`embedded_phantom` is the default data set of the ``lsm_sss``,
``sop_sss`` and ``ioda_sss`` bundles: a synthetic L3 cohort generated on first use.

For bundle inference, :func:`list_images`, :class:`LoadCTd` and :class:`SaveMaskd` read a folder
of CT slices and write each predicted mask as NIfTI on the source's native grid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from lsmseg.data.sit import cache_root
from lsmseg.data.split import supervision_split
from lsmseg.io import CTSlice, IngestError, is_nifti, nifti_stem, read_dicom_slice, read_nifti_slice
from lsmseg.keys import TISSUE_NAMES, Keys, Mode, Tissue
from lsmseg.transforms import (
    DEFAULT_HU_RANGE,
    CropBox,
    CropWindowResize,
    SliceGeometry,
    body_crop_box,
    crop,
)
from lsmseg.transforms.resize import resize_labels

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = tuple(TISSUE_NAMES[t.value] for t in Tissue)  # background first
N_CLASSES = len(CLASS_NAMES)
IMAGE_SUFFIXES = (".dcm", ".dicom", ".ima", ".nii.gz", ".nii")
MASK_SUFFIXES = (".nii.gz", ".nii")
SOURCE_KEY = "source"  # path of the CT file a row or prediction came from
CROP_BOX_KEY = "crop_box"  # [row0, row1, col0, col1] of the body crop on the native grid
ERROR_KEY = "error"  # why an inference case could not be read ("" when it could)
# Bump when the preprocessing changes, so stale cached arrays are not reused.
CACHE_VERSION = 1


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


def case_id_of(path: str | Path) -> str:
    """A case's id: its file name without ``.nii.gz`` / ``.nii`` / ``.dcm`` (or other suffix)."""
    return nifti_stem(path) if is_nifti(path) else Path(path).stem


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


def read_ct(path: str | Path, case_id: str | None = None, *, check: bool = True) -> CTSlice:
    """Read one CT slice file (DICOM or NIfTI) into a :class:`CTSlice` on the normalised grid.

    ``case_id`` defaults to :func:`case_id_of` (the file name), not the DICOM PatientID, so
    images and masks pair by file name.

    Raises:
        IngestError: unreadable file, a multi-slice file, or a failed quality check.
    """
    path = Path(path)
    case_id = case_id or case_id_of(path)
    if is_nifti(path):
        return read_nifti_slice(path, case_id, check=check)
    return read_dicom_slice(path, case_id, check=check)


def read_mask(path: str | Path, n_classes: int = N_CLASSES) -> np.ndarray:
    """Read a NIfTI label mask onto the normalised grid of its image (see :class:`CTSlice`).

    The mask shares its image's geometry, so reading it like a CT slice (affine-aware, without
    the HU quality gate) puts both in the same pixel order, whatever the file's axis order.

    Returns:
        (H, W) int64 labels in 0..n_classes-1.

    Raises:
        IngestError: unreadable file; ValueError: values that are not labels 0..n_classes-1.
    """
    values = read_nifti_slice(path, check=False).hu
    labels = np.rint(values)
    if not np.array_equal(labels, values) or labels.min() < 0 or labels.max() >= n_classes:
        found = np.unique(values)
        raise ValueError(
            f"mask {Path(path).name} must hold labels 0..{n_classes - 1} "
            f"({', '.join(CLASS_NAMES[:n_classes])}), found values {found[:8].tolist()}"
        )
    return labels.astype(np.int64)


def mask_crop_box(mask: np.ndarray) -> CropBox:
    """Square body box of a mask that has no CT: its tissue pixels stand in for the body.

    Same square-box logic as the image crop (:func:`lsmseg.transforms.body_crop_box`, margin
    included), run on a stand-in HU image that is soft tissue (0 HU) over the bounding box of
    the mask's tissue pixels and air (-1000 HU) elsewhere. The bounding box, not the pixels
    themselves: tissue rings can be thin or broken, and the body finder would keep only their
    largest piece.
    """
    tissue = np.asarray(mask) != Tissue.BACKGROUND
    stand_in_hu = np.full(tissue.shape, -1000.0, np.float32)
    if tissue.any():
        rows, cols = np.flatnonzero(tissue.any(axis=1)), np.flatnonzero(tissue.any(axis=0))
        stand_in_hu[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 0.0
    return body_crop_box(stand_in_hu)


def _crop_mask(mask: np.ndarray, box: CropBox, image_size: int) -> np.ndarray:
    """(H, W) labels -> (1, S, S) int64, cut with ``box`` and resized with nearest labels."""
    cropped = crop(mask.astype(np.int64), box)
    return np.asarray(resize_labels(cropped, (image_size, image_size)), np.int64)[None]


def preprocess_case(
    case: SSSCase, image_size: int = 128, hu_range: tuple[float, float] = DEFAULT_HU_RANGE
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A case's network arrays: image (1, S, S) float32 in [0, 1] and mask (1, S, S) int64.

    A view the case lacks is None.

    Raises:
        ValueError (IngestError included): the CT or the mask cannot be read, fails the quality
            gate, or the mask is not on the image's grid; the message names the case.
    """
    image = mask = None
    try:
        labels = read_mask(case.mask) if case.mask is not None else None
        if case.image is not None:
            ct = read_ct(case.image, case.case_id)
            image, geometry = CropWindowResize(model_size=image_size, hu_range=hu_range)(ct.hu)
            if labels is not None and labels.shape != ct.hu.shape:
                raise ValueError(
                    f"mask {case.mask.name if case.mask else ''} has shape {labels.shape} but its "
                    f"image {case.image.name} has shape {ct.hu.shape}: a mask must be on its image's grid"
                )
            box = geometry.box
        elif labels is not None:
            box = mask_crop_box(labels)
        if labels is not None:
            mask = _crop_mask(labels, box, image_size)
    except ValueError as err:  # IngestError is a ValueError
        raise ValueError(f"case {case.case_id}: {err}") from err
    return image, mask


# ---------------------------------------------------------------------------------------------
# The on-disk cache of preprocessed arrays


def _cache_path(case: SSSCase, image_size: int, hu_range: tuple[float, float]) -> Path:
    """Cache file of a case: a hash of its files (path, mtime, size) and the settings."""
    key: list[Any] = [CACHE_VERSION, int(image_size), [float(v) for v in hu_range]]
    for path in (case.image, case.mask):
        if path is None:
            key.append(None)
        else:
            st = path.stat()
            key.append([str(path.resolve()), st.st_mtime_ns, st.st_size])
    digest = hashlib.sha1(json.dumps(key).encode()).hexdigest()
    return cache_root() / "sss-cache" / f"{case.case_id[:40]}-{digest[:20]}.npz"


def _read_cache(path: Path) -> tuple[np.ndarray | None, np.ndarray | None] | None:
    try:
        with np.load(path) as f:
            image = f["image"] if f["image"].size else None
            mask = f["mask"].astype(np.int64) if f["mask"].size else None
        return image, mask
    except FileNotFoundError:
        return None
    except Exception as err:  # a truncated or foreign file: recompute it
        logger.warning(f"ignoring unreadable cache file {path}: {err}")
        return None


def _write_cache(path: Path, image: np.ndarray | None, mask: np.ndarray | None) -> None:
    """Write atomically (several processes may preprocess the same set, e.g. under torchrun)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(
            tmp,
            image=image if image is not None else np.zeros(0, np.float32),
            mask=mask.astype(np.uint8) if mask is not None else np.zeros(0, np.uint8),  # labels 0..3
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_case(
    case: SSSCase, image_size: int = 128, hu_range: tuple[float, float] = DEFAULT_HU_RANGE
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """:func:`preprocess_case` through the on-disk cache (a changed file gets a new entry)."""
    path = _cache_path(case, image_size, hu_range)
    hit = _read_cache(path)
    if hit is not None:
        return hit
    image, mask = preprocess_case(case, image_size, hu_range)
    _write_cache(path, image, mask)
    return image, mask


# ---------------------------------------------------------------------------------------------
# Rows


def load_sss(
    dataset_dir: str | Path,
    proportion: float = 1.0,
    seed: int = 0,
    image_size: int = 128,
    hu_range: Sequence[float] = DEFAULT_HU_RANGE,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
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
        image_size: S, side of the network input (pixels).
        hu_range: HU window mapped to [0, 1].
        fractions: train, valid, test fractions of the pairs.

    Returns:
        {"train", "valid", "test"}: lists of rows ``{"image": (1, S, S) float32 in [0, 1],
        "label": (1, S, S) int64 Tissue labels, "mode": int Mode, "case_id": str}``; the view a
        row hides is zero-filled.

    Raises:
        FileNotFoundError / ValueError: a missing folder, fewer than 3 pairs, or a case that
            cannot be read (the message names the case; training data fails early).
    """
    low, high = (float(hu_range[0]), float(hu_range[1]))
    if not high > low:
        raise ValueError(f"hu_range must be an increasing [min, max] in HU, got {list(hu_range)}")
    cases = scan_sss(dataset_dir)
    pairs = [c for c in cases if c.mode == Mode.PAIRED]
    if len(pairs) < 3:
        raise ValueError(
            f"dataset_dir {dataset_dir} has {len(pairs)} image/mask pair(s) (same file name in "
            "images/ and masks/): need at least 3 for a train/valid/test split"
        )
    arrays = {c.case_id: cached_case(c, image_size, (low, high)) for c in cases}
    zero_x = np.zeros((1, image_size, image_size), np.float32)
    zero_y = np.zeros((1, image_size, image_size), np.int64)

    def row(case: SSSCase, mode: Mode) -> dict:
        image, mask = arrays[case.case_id]
        return {
            Keys.IMAGE: image if mode.has_x and image is not None else zero_x,
            Keys.LABEL: mask if mode.has_y and mask is not None else zero_y,
            Keys.MODE: int(mode),
            Keys.CASE_ID: case.case_id,
        }

    split = supervision_split(len(pairs), proportion, seed, fractions)
    unpaired = [c for c in cases if c.mode != Mode.PAIRED]
    train = (
        [row(pairs[i], Mode.PAIRED) for i in split.paired]
        + [row(pairs[i], Mode.X_ONLY) for i in split.x_only]
        + [row(pairs[i], Mode.Y_ONLY) for i in split.y_only]
        + [row(c, c.mode) for c in unpaired]
    )
    rows = {
        "train": train,
        "valid": [row(pairs[i], Mode.PAIRED) for i in split.valid],
        "test": [row(pairs[i], Mode.PAIRED) for i in split.test],
    }
    logger.info(
        f"SSS {dataset_dir}: {len(pairs)} pairs, {len(unpaired)} unpaired files; train "
        f"{len(split.paired)} paired + {len(train) - len(split.paired)} unpaired rows, "
        f"valid {len(rows['valid'])}, test {len(rows['test'])}"
    )
    return rows


def load_rows(
    dataset_dir: str | Path,
    proportion: float = 1.0,
    seed: int = 0,
    image_size: int = 128,
    hu_range: Sequence[float] = DEFAULT_HU_RANGE,
) -> dict[str, list[dict]]:
    """:func:`load_sss` for bundle configs: bad data ends the run with one line, no traceback."""
    from lsmseg.bundle import fail

    try:
        return load_sss(dataset_dir, proportion, seed, image_size, hu_range)
    except (OSError, ValueError) as err:
        fail(str(err))
        raise  # unreachable: fail() raises SystemExit


# ---------------------------------------------------------------------------------------------
# The embedded data set


def embedded_phantom(n: int = 60, seed: int = 0) -> str:
    """Path of a synthetic L3 cohort (:func:`lsmseg.data.phantom.write_cohort`, NIfTI, 512x512).

    Generated on first use under :func:`cache_root` (a temporary folder renamed into place, so
    concurrent first runs never see a half-written cohort); about 0.15 s per case.
    """
    from lsmseg.data.phantom import write_cohort

    folder = cache_root() / f"sss-phantom-n{n}-s{seed}-v1"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".sss-phantom-"))
        try:
            logger.info(f"generating the embedded L3 phantom ({n} cases) in {folder}")
            write_cohort(tmp, n, fmt="nifti", seed=seed)
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not a lost race: a real failure
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


# ---------------------------------------------------------------------------------------------
# Inference on a folder of CT slices


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


class LoadCTd(MapTransform):
    """Read the CT file named under ``keys`` and preprocess it for the network.

    Replaces the path with the (1, S, S) float32 tensor of :class:`CropWindowResize` and records
    ``source`` (the path), ``crop_box`` ([row0, row1, col0, col1], int64) and ``error`` ("" or
    why the file could not be read). A file that fails ingest or the quality gate gets a zero
    image and its error, so one bad case does not stop a cohort; :class:`SaveMaskd` skips it.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.IMAGE,
        image_size: int = 128,
        hu_range: Sequence[float] = DEFAULT_HU_RANGE,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.prep = CropWindowResize(
            model_size=int(image_size), hu_range=(float(hu_range[0]), float(hu_range[1]))
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        size = self.prep.model_size
        for key in self.key_iterator(d):
            path = str(d[key])
            d[SOURCE_KEY], d[ERROR_KEY] = path, ""
            d[CROP_BOX_KEY] = np.zeros(4, np.int64)
            try:
                ct = read_ct(path, str(d.get(Keys.CASE_ID) or case_id_of(path)))
                image, geometry = self.prep(ct.hu)
                box = geometry.box
                d[CROP_BOX_KEY] = np.array([box.row0, box.row1, box.col0, box.col1], np.int64)
            except IngestError as err:
                logger.warning(f"skipping {path}: {err}")
                image, d[ERROR_KEY] = np.zeros((1, size, size), np.float32), str(err)
            d[key] = torch.as_tensor(image)
        return d


def write_mask_on_source_grid(mask: np.ndarray, ct: CTSlice, path: str | Path) -> Path:
    """Write an (H, W) label mask on the normalised grid of ``ct`` as NIfTI on the source's grid.

    A NIfTI source gets a mask with its own array shape, axis order and affine (it overlays the
    source voxel for voxel); a DICOM source gets :func:`lsmseg.io.writers.write_mask_nifti` (the
    slice's geometry, (H, W, 1)).
    """
    import nibabel as nib

    from lsmseg.io.writers import atomic_write, write_mask_nifti

    if not is_nifti(ct.source):
        return write_mask_nifti(mask, ct, path)
    source = nib.load(ct.source)
    if not isinstance(source, nib.Nifti1Image):
        raise ValueError(f"case {ct.case_id}: {ct.source} is not a NIfTI-1 image")
    labels = np.asarray(mask, dtype=np.uint8)
    if labels.shape != ct.hu.shape:
        raise ValueError(f"case {ct.case_id}: mask shape {labels.shape} does not match the CT {ct.hu.shape}")
    # stored pixel order of the one slice; the single-slice axis keeps its place in the shape
    data = ct.to_source_grid(labels).reshape(source.shape)
    image = nib.Nifti1Image(data, source.affine)
    image.set_qform(source.affine, code=1)
    image.set_sform(source.affine, code=1)
    image.header.set_data_dtype(np.uint8)
    image.header.set_xyzt_units("mm")
    image.header.set_intent("label")
    path = Path(path)
    with atomic_write(path) as tmp:
        nib.save(image, tmp)
    return path


class SaveMaskd(MapTransform):
    """Map a prediction back to its CT's native grid and write it as ``<output_dir>/<case_id>.nii.gz``.

    Expects the keys of :class:`LoadCTd` and ``keys`` holding (C, S, S) logits or probabilities
    (interpolated bilinearly and arg-maxed on the crop, then padded with background, see
    :meth:`CropWindowResize.inverse_mask`). The written path goes under ``mask_path``. The
    output folder can serve as ``masks/`` of an SSS folder (e.g. after hand correction).
    """

    def __init__(
        self, keys: KeysCollection, output_dir: str | Path, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if d.get(ERROR_KEY):
            d["mask_path"] = ""
            return d
        # re-read for the geometry (affine, orientation): it does not survive batch collation
        ct = read_ct(d[SOURCE_KEY], str(d.get(Keys.CASE_ID) or case_id_of(d[SOURCE_KEY])), check=False)
        row0, row1, col0, col1 = (int(v) for v in d[CROP_BOX_KEY])
        for key in self.key_iterator(d):
            scores = d[key]
            geometry = SliceGeometry(CropBox(row0, row1, col0, col1, ct.hu.shape), int(scores.shape[-1]))
            labels = CropWindowResize(model_size=geometry.model_size).inverse_mask(scores, geometry)
            d["mask_path"] = str(
                write_mask_on_source_grid(labels, ct, self.output_dir / f"{ct.case_id}.nii.gz")
            )
        return d
