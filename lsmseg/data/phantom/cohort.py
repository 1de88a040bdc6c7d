"""A synthetic L3 cohort on disk: images, masks, the patient table and the truth areas.

This is what ``lsmseg phantom DIR`` writes (DESIGN.md, "Command line"); the files go through
:mod:`lsmseg.io.ct_writers` (DICOM, NIfTI) and :func:`lsmseg.io.atomic.write_csv_atomic`.
Case ``i`` of cohort ``seed`` depends on ``(seed, i)`` only, and its DICOM UIDs and dates are
derived from them, so a rerun writes identical files and a larger cohort extends a smaller one.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lsmseg.data.phantom.anatomy import generate_patient
from lsmseg.data.phantom.render import REFERENCE_SIZE, PhantomSlice, generate_slice
from lsmseg.io.atomic import write_csv_atomic
from lsmseg.io.ct_writers import axial_affine_ras, decimal_string, write_ct_dicom, write_slice_nifti

PATIENT_COLUMNS = ("case_id", "height_m", "weight_kg", "sex")
TRUTH_COLUMNS = ("case_id", "muscle_area_cm2", "imat_area_cm2", "sat_area_cm2", "vat_area_cm2")
SLICE_THICKNESSES_MM = (1.0, 2.5, 3.0, 5.0)  # drawn per case, as in a mixed clinical cohort


def cohort_case_id(index: int) -> str:
    """Case id of the ``index``-th (0-based) case of a cohort: ``phantom_0001`` for index 0."""
    return f"phantom_{index + 1:04d}"


def cohort_slice(seed: int, index: int, size: int = REFERENCE_SIZE) -> PhantomSlice:
    """The ``index``-th (0-based) slice of the cohort ``seed``, as :func:`write_cohort` draws it.

    It depends on ``(seed, index)`` only, so cohorts of any size share their first cases.
    """
    rng = np.random.default_rng([seed, index])
    return generate_slice(rng, size=size, patient=generate_patient(rng, cohort_case_id(index)))


def write_cohort(
    out_dir: str | Path,
    n: int,
    fmt: Literal["dicom", "nifti"] = "dicom",
    seed: int = 0,
    size: int = REFERENCE_SIZE,
) -> list[str]:
    """Write ``n`` synthetic L3 cases with masks, patient table and truth areas.

    Layout: ``out_dir/images/<case_id>.dcm`` (CT Image Storage; PatientID = case_id) or
    ``.nii.gz`` (int16 HU), ``out_dir/masks/<case_id>.nii.gz`` (uint8 ``Tissue`` labels on the
    image grid and geometry), ``out_dir/patients.csv`` (``PATIENT_COLUMNS``) and
    ``out_dir/truth.csv`` (``TRUTH_COLUMNS``, cm^2 with 3 decimals). Case ``i`` is
    :func:`cohort_slice` ``(seed, i, size)``, so a larger cohort extends a smaller one; DICOM UIDs
    are derived from the seed and case id, so a rerun writes identical files. Every file is
    written atomically (temporary file, then rename).

    Returns:
        The case ids, ``phantom_0001`` ... in order.
    """
    if fmt not in ("dicom", "nifti"):
        raise ValueError(f"unknown phantom format {fmt!r}: use 'dicom' or 'nifti'")
    if n < 1:
        raise ValueError(f"the phantom cohort needs n >= 1 cases, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    patients: list[dict[str, Any]] = []
    truths: list[dict[str, Any]] = []
    case_ids = [cohort_case_id(i) for i in range(n)]
    for i, case_id in enumerate(case_ids):
        sl = cohort_slice(seed, i, size=size)
        _write_case(out, sl, case_id, fmt, seed, i)
        patients.append(
            {
                "case_id": case_id,
                "height_m": f"{sl.patient['height_m']:.2f}",
                "weight_kg": f"{sl.patient['weight_kg']:.1f}",
                "sex": sl.patient["sex"],
            }
        )
        truths.append({"case_id": case_id, **{k: f"{v:.3f}" for k, v in sl.truth().items()}})
    write_csv_atomic(out / "patients.csv", PATIENT_COLUMNS, patients)
    write_csv_atomic(out / "truth.csv", TRUTH_COLUMNS, truths)
    return case_ids


def image_position_mm(sl: PhantomSlice, z_mm: float) -> list[float]:
    """ImagePositionPatient (LPS mm) of the centre of pixel (0, 0); the grid is centred on the
    scanner axis, rows running +y (posterior), columns +x (patient left)."""
    rows, cols = sl.hu.shape
    return [-sl.spacing_mm[1] * (cols - 1) / 2.0, -sl.spacing_mm[0] * (rows - 1) / 2.0, z_mm]


def _write_case(out: Path, sl: PhantomSlice, case_id: str, fmt: str, seed: int, index: int) -> None:
    """The image (DICOM or NIfTI) and the mask (NIfTI) of one case, at a drawn table position."""
    meta_rng = np.random.default_rng([seed, index, 1])
    z_mm = round(float(meta_rng.uniform(-250.0, -100.0)), 2)
    thickness_mm = float(meta_rng.choice(SLICE_THICKNESSES_MM))
    position = image_position_mm(sl, z_mm)
    affine = axial_affine_ras(position, sl.spacing_mm, thickness_mm)
    if fmt == "dicom":
        tags = _dicom_tags(sl, case_id, seed, index, z_mm, thickness_mm, meta_rng)
        write_ct_dicom(
            out / "images" / f"{case_id}.dcm",
            sl.hu,
            sl.spacing_mm,
            position,
            tags,
            implementation_name="LSMSEG_PHANTOM",
        )
    else:
        write_slice_nifti(out / "images" / f"{case_id}.nii.gz", sl.hu.astype(np.int16), affine)
    write_slice_nifti(out / "masks" / f"{case_id}.nii.gz", sl.mask.astype(np.uint8), affine)


def _dicom_tags(
    sl: PhantomSlice,
    case_id: str,
    seed: int,
    index: int,
    z_mm: float,
    thickness_mm: float,
    meta_rng: np.random.Generator,
) -> dict[str, Any]:
    """Identifiers, dates and acquisition tags of one phantom CT file (PatientID = case_id).

    UIDs are derived from (seed, case_id), so the same seed and case give the same UIDs; the
    study date and time are drawn from ``meta_rng``.
    """
    from pydicom.uid import generate_uid

    def uid(tag: str) -> str:
        return generate_uid(entropy_srcs=["lsmseg-phantom", str(seed), case_id, tag])

    patient = sl.patient
    study = datetime.datetime(2020, 1, 1, 8, 0, 0) + datetime.timedelta(
        days=int(meta_rng.integers(0, 1500)), seconds=int(meta_rng.integers(0, 10 * 3600))
    )
    date, time = study.strftime("%Y%m%d"), study.strftime("%H%M%S")
    return {
        "SpecificCharacterSet": "ISO_IR 100",
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "SOPInstanceUID": uid("sop"),
        **dict.fromkeys(("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"), date),
        **dict.fromkeys(("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"), time),
        "AccessionNumber": f"PH{seed:04d}{index:05d}"[-16:],
        "Manufacturer": "lsmseg phantom",
        "ManufacturerModelName": "synthetic L3",
        "InstitutionName": "lsmseg",
        "ReferringPhysicianName": "",
        "StudyDescription": "Synthetic abdominal CT (L3 phantom)",
        "SeriesDescription": "L3 axial",
        "PatientName": f"Phantom^{case_id}",
        "PatientID": case_id,
        "PatientBirthDate": "",
        "PatientSex": patient.get("sex", "O"),
        "PatientAge": f"{int(patient.get('age_years', 0)):03d}Y",
        "PatientSize": f"{float(patient['height_m']):.2f}",
        "PatientWeight": f"{float(patient['weight_kg']):.1f}",
        "BodyPartExamined": "ABDOMEN",
        "SliceThickness": f"{thickness_mm:g}",
        "KVP": "120",
        "PatientPosition": "HFS",
        "StudyInstanceUID": uid("study"),
        "SeriesInstanceUID": uid("series"),
        "StudyID": f"{index + 1}",
        "SeriesNumber": 2,
        "AcquisitionNumber": 1,
        "InstanceNumber": 1,
        "FrameOfReferenceUID": uid("frame"),
        "PositionReferenceIndicator": "",
        "SliceLocation": decimal_string(z_mm),
        "WindowCenter": "40",
        "WindowWidth": "400",
    }
