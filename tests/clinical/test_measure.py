"""What is stored is what is measured; measure re-measures corrected masks (SR: tests/io/test_sr.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest

from lsmseg.clinical import segment_cohort
from lsmseg.clinical.case import MEASURE_CAVEAT
from lsmseg.clinical.measure import measure_cohort, training_mask
from lsmseg.data.phantom import write_cohort
from lsmseg.io.labels import LABEL_BY_KEY
from lsmseg.keys import Measured
from tests.helpers.clinical import tiny_bundle

AREAS = ("muscle", "imat", "sat", "vat")
NUMBERS = ("muscle_area_cm2", "imat_area_cm2", "sat_area_cm2", "vat_area_cm2", "muscle_mean_hu", "smi_cm2_m2")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    write_cohort(folder, 2, fmt="dicom", seed=3, size=256)  # >= 1.2-1.9 mm pixels: a plausible spacing
    return folder


@pytest.fixture(scope="module")
def run(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    out = tmp_path_factory.mktemp("out")
    yield segment_cohort(
        [cohort / "images"],
        out,
        tiny_bundle(),
        patients_csv=cohort / "patients.csv",
        device="cpu",
        progress=False,
    )


def pixel_cm2(row: dict[str, Any]) -> float:
    r, c = (float(v) for v in row["pixel_spacing_mm"].split("x"))
    return r * c / 100.0


def test_mask_and_seg_hold_exactly_the_measured_pixels(run: Any) -> None:
    import highdicom as hd

    assert run.exit_status == 0, [r["error"] for r in run.rows]
    for row in run.rows:
        folder = run.out_dir / "cases" / row["case_id"]
        assert {p.name for p in folder.iterdir()} >= {
            "mask.nii.gz",
            "mask_model.nii.gz",
            "labels.json",
            "seg.dcm",
            "sr.dcm",
        }
        mask = np.asarray(nib.load(folder / "mask.nii.gz").dataobj)
        seg = hd.seg.segread(folder / "seg.dcm")
        uid = pydicom.dcmread(row["source"], stop_before_pixels=True).SOPInstanceUID
        pixels = seg.get_pixels_by_source_instance([uid])[0]
        names = {
            seg.get_segment_description(n).segment_label: i for i, n in enumerate(seg.get_segment_numbers())
        }
        for key in AREAS:
            label = LABEL_BY_KEY[key]
            count = int(np.count_nonzero(mask == label.value))
            assert round(count * pixel_cm2(row), 2) == row[f"{key}_area_cm2"], key
            in_seg = int(np.count_nonzero(pixels[:, :, names[label.name]])) if label.name in names else 0
            assert in_seg == count, key  # a label with no pixel has no segment
        raw = np.asarray(nib.load(folder / "mask_model.nii.gz").dataobj)
        assert Measured.IMAT not in np.unique(raw)
        assert np.count_nonzero(raw == Measured.SAT) > np.count_nonzero(
            mask == Measured.SAT
        )  # air etc. removed


def test_measure_on_unedited_masks_reproduces_segment_exactly(run: Any, cohort: Path, tmp_path: Path) -> None:
    again = measure_cohort(
        [cohort / "images"], run.out_dir / "cases", tmp_path / "m", patients_csv=cohort / "patients.csv"
    )
    assert again.exit_status == 0, [r["error"] for r in again.rows]
    for before, after in zip(run.rows, again.rows, strict=True):
        for key in (*NUMBERS, "sarcopenia_prado2008", "sarcopenia_martin2013"):
            assert after[key] == before[key], key
        assert after["model"] == "lsmseg-measure"
        assert after["quality"] == before["quality"]
    for report in (run, again):  # results.json carries the research-use caveat of its run
        provenance = json.loads(report.results_json.read_text())["provenance"]
        assert provenance["caveat"] == report.caveat and report.caveat.startswith("research use only")
    assert again.caveat == MEASURE_CAVEAT


def test_removing_a_muscle_region_lowers_muscle_area_by_its_area(
    run: Any, cohort: Path, tmp_path: Path
) -> None:
    row = run.rows[0]
    case_id = row["case_id"]
    masks = tmp_path / "masks"
    masks.mkdir()
    image = nib.load(run.out_dir / "cases" / case_id / "mask.nii.gz")
    data = np.asarray(image.dataobj).copy()
    muscle = np.argwhere(data == Measured.MUSCLE)
    region = np.zeros(data.shape, bool)
    region[tuple(muscle[: len(muscle) // 3].T)] = True  # a third of the muscle pixels, erased by hand
    data[region] = 0
    nib.save(nib.Nifti1Image(data, image.affine, image.header), masks / f"{case_id}.nii.gz")
    out = measure_cohort([cohort / "images" / f"{case_id}.dcm"], masks, tmp_path / "m")
    after = out.rows[0]
    removed = int(region.sum()) * pixel_cm2(row)
    assert after["muscle_area_cm2"] == pytest.approx(row["muscle_area_cm2"] - removed, abs=0.0051)
    assert after["muscle_area_cm2"] == round(
        int(np.count_nonzero(data == Measured.MUSCLE)) * pixel_cm2(row), 2
    )
    assert after["sat_area_cm2"] == row["sat_area_cm2"]


def test_measure_reads_the_dicom_seg_and_checks_geometry(run: Any, cohort: Path, tmp_path: Path) -> None:
    row = run.rows[0]
    case_id = row["case_id"]
    segs = tmp_path / "segs"
    segs.mkdir()
    shutil.copy(run.out_dir / "cases" / case_id / "seg.dcm", segs / "anything.dcm")
    out = measure_cohort([cohort / "images" / f"{case_id}.dcm"], segs, tmp_path / "m")
    assert out.rows[0]["status"] == "ok", out.rows[0]["error"]
    assert out.rows[0]["muscle_area_cm2"] == row["muscle_area_cm2"]
    bad = tmp_path / "bad"
    bad.mkdir()
    image = nib.load(run.out_dir / "cases" / case_id / "mask.nii.gz")
    shifted = image.affine.copy()
    shifted[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), shifted), bad / f"{case_id}.nii.gz")
    failed = measure_cohort([cohort / "images" / f"{case_id}.dcm"], bad, tmp_path / "b")
    assert failed.exit_status == 1 and "not on the image's grid" in failed.rows[0]["error"]


def test_corrected_cases_are_paired_training_data(run: Any, cohort: Path, tmp_path: Path) -> None:
    from lsmseg.data.sss import read_mask, scan_sss

    case_id = run.rows[0]["case_id"]
    dataset = tmp_path / "dataset"
    (dataset / "images").mkdir(parents=True)
    (dataset / "masks").mkdir()
    shutil.copy(cohort / "images" / f"{case_id}.dcm", dataset / "images" / f"{case_id}.dcm")
    image = nib.load(run.out_dir / "cases" / case_id / "mask.nii.gz")
    labels = training_mask(np.asarray(image.dataobj))
    nib.save(nib.Nifti1Image(labels, image.affine), dataset / "masks" / f"{case_id}.nii.gz")
    (case,) = scan_sss(dataset)
    assert case.case_id == case_id and case.image is not None and case.mask is not None
    assert read_mask(case.mask).max() == Measured.MUSCLE  # IMAT folded into muscle


def test_a_multi_slice_labelmap_gives_the_slice_on_the_image(run: Any, cohort: Path, tmp_path: Path) -> None:
    """A 3D Slicer labelmap of a whole series: the slice through the image's plane is measured."""
    row = run.rows[0]
    case_id = row["case_id"]
    image = nib.load(run.out_dir / "cases" / case_id / "mask.nii.gz")
    plane = np.asarray(image.dataobj)[..., :1]
    junk = np.full_like(plane, Measured.MUSCLE)  # other slices: all muscle, so a wrong pick shows
    volume = np.concatenate([junk, junk, plane, junk, junk], axis=2)  # the image is slice 2
    affine = image.affine.copy()
    affine[:3, 3] -= 2 * affine[:3, 2]
    masks = tmp_path / "masks"
    masks.mkdir()
    nib.save(nib.Nifti1Image(volume, affine), masks / f"{case_id}.nii.gz")
    out = measure_cohort([cohort / "images" / f"{case_id}.dcm"], masks, tmp_path / "m")
    assert out.rows[0]["status"] == "ok", out.rows[0]["error"]
    for key in NUMBERS[:4]:
        assert out.rows[0][key] == row[key], key
    affine[:3, 3] += 0.5 * affine[:3, 2]  # half a slice off: no slice lies on the image
    nib.save(nib.Nifti1Image(volume, affine), masks / f"{case_id}.nii.gz")
    failed = measure_cohort([cohort / "images" / f"{case_id}.dcm"], masks, tmp_path / "b")
    assert failed.exit_status == 1
    assert "has 5 slices but none passes through the image's plane" in failed.rows[0]["error"]
