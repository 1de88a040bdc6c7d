"""``measure_cohort``: re-measure from masks a person corrected (the library behind ``lsmseg measure``).

    check the request -> discover_cases (as segment) -> find each case's mask in --masks ->
    check its geometry against the image -> fold IMAT back into muscle -> CaseRunner.finish_mask
    (the readout, case files and row of segment) -> results.csv / results.json

A mask is matched to its image by case id (``<case_id>.nii.gz`` or ``<case_id>/mask.nii.gz``,
so a segment output's ``cases/`` folder works as it is; a multi-slice labelmap of the whole
series gives its slice on the image's plane) or, for a DICOM SEG, by the SeriesInstanceUID it
references. The measured mask of segment (``mask.nii.gz``, labels 0..4) and
a raw model mask (0..3) both work: re-measuring is idempotent because the HU ranges are.

Corrected cases feed training: copy the images to ``<dataset>/images/<case_id>.<ext>`` and
``cases/<case_id>/mask_model.nii.gz`` - or the corrected mask with IMAT folded into muscle,
which :func:`training_mask` writes - to ``<dataset>/masks/<case_id>.nii.gz``; ``lsm_sss``
(:func:`lsmseg.data.sss.scan_sss`) pairs them by case id.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.clinical.case import MEASURE_CAVEAT, MEASURE_LABEL, CaseRunner, Ingested, Timer
from lsmseg.clinical.cohort import DEFAULT_CUTOFFS, check_request, find_cases
from lsmseg.clinical.gates import gate_before
from lsmseg.clinical.patients import PatientRecord
from lsmseg.clinical.results import RESULTS_CSV, RESULTS_JSON, SegmentReport, build_provenance, write_results
from lsmseg.errors import UsageError
from lsmseg.io import CaseSource, CTSlice, IngestError, is_nifti, nifti_stem, read_nifti_slice
from lsmseg.io.labels import LABELS
from lsmseg.io.nifti import open_nifti, slice_axis
from lsmseg.keys import VAT_HU_DEFAULT
from lsmseg.readout.labelmap import compartments

logger = logging.getLogger(__name__)

AFFINE_TOLERANCE_MM = 0.01  # positions of the mask's pixels vs the image's


def index_masks(masks_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """({case_id: NIfTI mask}, {referenced SeriesInstanceUID: DICOM SEG}) found in ``masks_dir``.

    NIfTI masks are ``<case_id>.nii[.gz]`` at the top, or ``<case_id>/mask.nii.gz``; SEG files are
    any DICOM file below whose Modality is SEG.
    """
    import pydicom

    if not masks_dir.is_dir():
        raise UsageError(f"--masks {masks_dir} is not a folder")
    nifti: dict[str, Path] = {}
    segs: dict[str, Path] = {}
    for path in sorted(masks_dir.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if is_nifti(path):
            if path.parent == masks_dir:
                nifti.setdefault(nifti_stem(path), path)
            elif path.name == "mask.nii.gz" and path.parent.parent == masks_dir:
                nifti.setdefault(path.parent.name, path)
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM: other files may lie beside the masks
            continue
        if ds.get("Modality") == "SEG" and "ReferencedSeriesSequence" in ds:
            segs[str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)] = path
    return nifti, segs


def volume_slice(path: Path, ct: CTSlice) -> int | None:
    """The slice of a multi-slice NIfTI mask (a 3D Slicer labelmap of the whole series) whose
    plane holds the image's first pixel; None for a one-slice mask. :func:`nifti_mask` then
    checks that the whole slice lies on the image's grid.

    Raises:
        IngestError: unreadable, or no slice of the volume passes through the image's plane.
    """
    img = open_nifti(path, "mask ")
    axis = slice_axis(img)
    n_slices = 1 if axis >= len(img.shape) else int(img.shape[axis])
    if n_slices == 1:
        return None
    lps = ct.affine @ np.array([0.0, 0.0, 0.0, 1.0])
    ras = np.array([-lps[0], -lps[1], lps[2], 1.0])  # nibabel affines map to RAS, CTSlice's to LPS
    position = float((np.linalg.inv(img.affine) @ ras)[axis])  # in slices of the volume
    index = round(position)
    off_mm = abs(position - index) * float(np.linalg.norm(img.affine[:3, axis]))
    if not 0 <= index < n_slices or off_mm > AFFINE_TOLERANCE_MM:
        raise IngestError(
            f"mask {path.name} has {n_slices} slices but none passes through the image's plane "
            f"(nearest: slice {position:.2f}) - save the labelmap of the series this slice comes from"
        )
    return index


def nifti_mask(path: Path, ct: CTSlice) -> np.ndarray:
    """A NIfTI mask on the normalised grid of ``ct``, its geometry checked: a one-slice mask, or
    the slice of a multi-slice labelmap that lies on the image (:func:`volume_slice`).

    Raises:
        IngestError: unreadable, no slice on the image's plane, non-integer labels, or another
            shape, pixel spacing or orientation / position than the image.
    """
    index = volume_slice(path, ct)
    try:
        mask_ct = read_nifti_slice(path, ct.case_id, index, check=False)
    except IngestError as err:
        raise IngestError(f"mask {path.name}: {err}") from err
    values = mask_ct.hu
    if values.shape != ct.hu.shape:
        raise IngestError(f"mask {path.name} is {values.shape} pixels but the image is {ct.hu.shape}")
    if not np.allclose(mask_ct.spacing_mm, ct.spacing_mm, rtol=1e-4):
        raise IngestError(
            f"mask {path.name} has pixel spacing {mask_ct.spacing_mm} mm, the image {ct.spacing_mm} mm"
        )
    corners = np.array(
        [[0, 0, 0, 1], [values.shape[0] - 1, 0, 0, 1], [0, values.shape[1] - 1, 0, 1]], float
    ).T
    offset = np.abs(mask_ct.affine @ corners - ct.affine @ corners)[:3].max()
    if offset > AFFINE_TOLERANCE_MM:
        raise IngestError(
            f"mask {path.name} is not on the image's grid: its corner pixels lie up to {offset:.2f} mm from "
            "the image's (another orientation, origin or slice) - save the mask from the image it was drawn on"
        )
    labels = np.rint(values)
    if not np.array_equal(labels, values):
        raise IngestError(f"mask {path.name} holds non-integer values: not a label mask")
    return labels.astype(np.int64)


def seg_mask(path: Path, ct: CTSlice) -> np.ndarray:
    """A DICOM SEG's segments as labels on the normalised grid of ``ct`` (segments matched to
    the label table by their coded type and region, else their label).

    Raises:
        IngestError: the SEG does not cover the image's SOP instance, or a segment is unknown.
    """
    import highdicom as hd

    assert ct.dicom is not None
    seg = hd.seg.segread(path)
    try:
        pixels = seg.get_pixels_by_source_instance([ct.dicom.sop_instance_uid])[0]  # (rows, cols, segments)
    except (KeyError, ValueError) as err:
        raise IngestError(
            f"SEG {path.name} has no frame for image {ct.dicom.sop_instance_uid}: {err}"
        ) from err
    by_code = {(lb.type[0], lb.region[0] if lb.region else None): lb.value for lb in LABELS}
    by_name = {lb.name.lower(): lb.value for lb in LABELS}
    stored = np.zeros(pixels.shape[:2], dtype=np.int64)
    for index, number in enumerate(seg.get_segment_numbers()):
        item = seg.get_segment_description(number)
        regions = [r.value for r in item.anatomic_regions]
        value = by_code.get((item.segmented_property_type.value, regions[0] if regions else None))
        value = value or by_name.get(item.segment_label.lower())
        if value is None:
            raise IngestError(
                f"SEG {path.name}: segment {number} ({item.segment_label}) is not a known compartment"
            )
        stored[pixels[:, :, index] > 0] = value
    if stored.shape != ct.to_source_grid(ct.hu).shape:
        raise IngestError(f"SEG {path.name} is {stored.shape} pixels but the image is {ct.hu.shape}")
    return ct.from_source_grid(stored)


def find_mask(
    case: CaseSource, ct: CTSlice, nifti: dict[str, Path], segs: dict[str, Path]
) -> tuple[Path, np.ndarray]:
    """The case's mask file and its (H, W) Tissue compartments on the normalised grid."""
    if case.case_id in nifti:
        path = nifti[case.case_id]
        labels = nifti_mask(path, ct)
    elif ct.dicom is not None and ct.dicom.series_uid in segs:
        path = segs[ct.dicom.series_uid]
        labels = seg_mask(path, ct)
    else:
        raise IngestError(
            f"no mask for case {case.case_id}: expected {case.case_id}.nii.gz or {case.case_id}/mask.nii.gz, "
            "or a DICOM SEG that references its series"
        )
    try:
        return path, compartments(labels)
    except ValueError as err:
        raise IngestError(f"mask {path.name}: {err}") from err


def training_mask(labels: np.ndarray) -> np.ndarray:
    """A corrected measured mask as training labels (Tissue 0..3: IMAT folded into muscle)."""
    return compartments(labels)


def measure_case(
    runner: CaseRunner,
    case: CaseSource,
    record: PatientRecord | None,
    masks: tuple[dict[str, Path], dict[str, Path]],
) -> dict[str, Any]:
    """One case's results row: ingest, anatomy gate, its mask (``masks``: :func:`index_masks`),
    readout and case files; a failure becomes an error row."""
    t = time.perf_counter()
    try:
        ct = runner.ingest(case, record)
        gate_before(ct)  # a corrected mask does not make a head an L3 slice
        path, mask = find_mask(case, ct, *masks)
        row = runner.finish_mask(Ingested(case, ct, record), mask, time.perf_counter() - t)
        row["mask_source"] = str(path)
    except Exception as err:
        row = runner.error_row(case, err, time.perf_counter() - t)
    return row


def measure_cohort(
    inputs: Sequence[str | os.PathLike[str]],
    masks_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    patients_csv: str | os.PathLike[str] | None = None,
    vat_hu: Sequence[float] = VAT_HU_DEFAULT,
    cutoffs: str | Sequence[str] = DEFAULT_CUTOFFS,
    refine: bool = True,
) -> SegmentReport:
    """Measure every slice in ``inputs`` with its (corrected) mask from ``masks_dir``.

    Same inputs, patients table, readout, case files and results as
    :func:`lsmseg.clinical.cohort.segment_cohort`, with the mask read instead of predicted; the
    ``model`` column says ``lsmseg-measure`` and ``mask_source`` names the mask used. The
    anatomy and plausibility gates of segment apply (``quality`` column).
    Raises UsageError before any case is measured (bad options, no inputs, no masks folder).
    """
    started, timer = time.perf_counter(), Timer()
    request = check_request(inputs, out_dir, patients_csv, vat_hu, cutoffs, refine, 1)
    cases = find_cases(request.inputs)
    masks = index_masks(Path(masks_dir))
    records = {c.case_id: request.patients.lookup(c) if request.patients else None for c in cases}
    case_inputs = {
        c.case_id: {"source": c.source, "patients_csv": r.as_dict() if r else None}
        for c, r in zip(cases, records.values(), strict=True)
    }
    model = {"model": MEASURE_LABEL, "masks_dir": str(masks_dir), "device": "none", "caveat": MEASURE_CAVEAT}
    provenance = build_provenance(
        model,
        request.cutoff_sets,
        request.vat_hu,
        refine,
        request.patients.path if request.patients else None,
        case_inputs,
    )
    request.out.mkdir(parents=True, exist_ok=True)
    runner = CaseRunner(request.out, None, request.cutoff_sets, request.vat_hu, refine, timer)
    rows = [measure_case(runner, case, records[case.case_id], masks) for case in cases]
    csv_path, json_path = request.out / RESULTS_CSV, request.out / RESULTS_JSON
    write_results(rows, csv_path, json_path, provenance, cutoff_sets=request.cutoff_sets)
    timer.add("total", time.perf_counter() - started)
    return SegmentReport(
        rows=rows,
        out_dir=request.out,
        results_csv=csv_path,
        results_json=json_path,
        processed=[c.case_id for c in cases],
        model=MEASURE_LABEL,
        device="none (no network)",
        timings_s=timer.seconds,
        validation=runner.validation,
        caveat=MEASURE_CAVEAT,
    )
