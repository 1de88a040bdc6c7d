"""One case: measured mask -> readout -> quality gate -> case files -> results row (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from lsmseg.clinical import case as case_module
from lsmseg.clinical.case import MEASURE_CAVEAT, MEASURE_LABEL, CaseRunner, Ingested, Timer, describe_error
from lsmseg.clinical.measure import nifti_mask
from lsmseg.data.phantom import write_cohort
from lsmseg.io import IngestError, discover_cases, load_case
from lsmseg.io.overlay import RESEARCH_NOTE, _caption, _footer
from lsmseg.keys import VAT_HU_DEFAULT, Measured, Tissue
from lsmseg.readout import get_cutoff_sets
from lsmseg.readout.labelmap import measured_mask

SIX_FILES = {"mask.nii.gz", "mask_model.nii.gz", "labels.json", "overlay.png", "seg.dcm", "sr.dcm"}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One phantom case as DICOM and as NIfTI (with its truth mask)."""
    out = {}
    for fmt in ("dicom", "nifti"):
        folder = tmp_path_factory.mktemp(fmt)
        write_cohort(folder, 1, fmt=fmt, seed=4, size=256)
        out[fmt] = folder
    return out


def ingested(folder: Path) -> tuple[Ingested, np.ndarray]:
    (source,) = discover_cases([folder / "images"])
    ct = load_case(source)
    (mask_path,) = (folder / "masks").iterdir()
    truth = nifti_mask(mask_path, ct)  # the phantom's truth, geometry checked against the image
    return Ingested(source, ct, None), truth.astype(np.uint8)


def runner(out: Path) -> CaseRunner:
    return CaseRunner(out, None, get_cutoff_sets("prado2008"), VAT_HU_DEFAULT, True, Timer())


def test_dicom_case_writes_six_files_and_a_gated_row(
    cohorts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: dict[str, Any] = {}
    real = case_module.write_overlay_png

    def spy(ct: Any, mask: Any, path: Any, measurements: Any = None) -> Path:
        shown.update(measurements)
        return real(ct, mask, path, measurements)

    monkeypatch.setattr(case_module, "write_overlay_png", spy)
    p, truth = ingested(cohorts["dicom"])
    row = runner(tmp_path).finish_mask(p, truth, 0.5)
    assert row["status"] == "ok", row["error"]
    assert row["quality"] == "ok" or row["quality"].startswith("warning: ")
    folder = tmp_path / "cases" / p.case.case_id
    assert {f.name for f in folder.iterdir()} == SIX_FILES
    assert row["seg_file"] == f"cases/{p.case.case_id}/seg.dcm" and row["model"] == MEASURE_LABEL
    assert row["runtime_s"] >= 0.5
    # the overlay is drawn from the gated row: its quality, the model, its caveat
    assert shown["quality"] == row["quality"] and shown["caveat"] == MEASURE_CAVEAT
    assert shown["model_validation"] == "mask corrected by hand, then re-measured"
    assert f"Quality {row['quality']}" in _caption(shown, "x").replace("\n  ", " ")
    assert _footer(shown).splitlines() == [
        "lsmseg-measure | mask corrected by hand, then re-measured",
        MEASURE_CAVEAT,
        RESEARCH_NOTE,
    ]
    # mask.nii.gz is the truth after the HU ranges, mask_model.nii.gz the truth itself, both in
    # the phantom masks' own array order (one convention: a direct array comparison works)
    expected = measured_mask(truth, p.ct.hu)
    np.testing.assert_array_equal(nifti_mask(folder / "mask.nii.gz", p.ct), expected)
    np.testing.assert_array_equal(nifti_mask(folder / "mask_model.nii.gz", p.ct), truth)
    (truth_file,) = (cohorts["dicom"] / "masks").iterdir()
    np.testing.assert_array_equal(
        np.asarray(nib.load(folder / "mask_model.nii.gz").dataobj), np.asarray(nib.load(truth_file).dataobj)
    )
    assert np.count_nonzero(expected == Measured.IMAT) > 0
    assert np.all(truth[expected == Measured.IMAT] == Tissue.MUSCLE)


def test_nifti_case_has_no_dicom_files(cohorts: dict[str, Path], tmp_path: Path) -> None:
    p, truth = ingested(cohorts["nifti"])
    row = runner(tmp_path).finish_mask(p, truth, 0.0)
    assert row["status"] == "ok", row["error"]
    assert row["seg_file"] is None and row["sr_file"] is None
    assert {f.name for f in (tmp_path / "cases" / p.case.case_id).iterdir()} == SIX_FILES - {
        "seg.dcm",
        "sr.dcm",
    }


def test_no_muscle_is_an_error_row_with_its_overlay(cohorts: dict[str, Path], tmp_path: Path) -> None:
    p, truth = ingested(cohorts["dicom"])
    truth[truth == Tissue.MUSCLE] = Tissue.BACKGROUND
    row = runner(tmp_path).finish_mask(p, truth, 0.0)
    assert row["status"] == "error" and row["quality"] is None
    assert row["error"].startswith("no skeletal muscle on this slice"), row["error"]
    assert (tmp_path / row["overlay_file"]).is_file() and row["sr_file"] is None


def test_runner_without_model_refuses_to_predict(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no model to predict with"):
        _ = runner(tmp_path).model


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (IngestError("series 1.2 has no PixelSpacing"), "series 1.2 has no PixelSpacing"),
        (MemoryError(), "out of memory while processing this slice"),
        (KeyError("x"), "unexpected error (KeyError: 'x'); rerun with --debug for the details"),
    ],
)
def test_errors_in_the_users_terms(err: BaseException, expected: str) -> None:
    assert describe_error(err) == expected
