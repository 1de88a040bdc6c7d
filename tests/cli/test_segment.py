"""``lsmseg segment``: instant help, usage errors (exit 2), a mixed folder (exit 1) and --resume."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from lsmseg.cli.main import main
from lsmseg.data.phantom import write_cohort
from tests.helpers.cli import probe_cli
from tests.helpers.clinical import (
    TINY_NGF,
    TINY_SIZE,
    read_csv,
    renamed,
    tiny_bundle,
    write_bundle,
    write_dicom,
)


@pytest.fixture(scope="module")
def bundle() -> Path:
    return tiny_bundle()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three phantom DICOM slices (phantom_0001..3)."""
    folder = tmp_path_factory.mktemp("good")
    write_cohort(folder, 3, fmt="dicom", seed=4, size=256)
    return folder / "images"


@pytest.fixture(scope="module")
def mixed(good: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The good slices plus one of each kind of bad input a clinical folder holds."""
    folder = tmp_path_factory.mktemp("mixed")
    for f in good.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    source = pydicom.dcmread(good / "phantom_0001.dcm")

    truncated = write_dicom(renamed(source, "TRUNCATED"), folder / "truncated.dcm")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    mri = renamed(source, "MRI")
    mri.Modality = "MR"
    write_dicom(mri, folder / "mri.dcm")
    no_spacing = renamed(source, "NOSPACING")
    del no_spacing.PixelSpacing
    write_dicom(no_spacing, folder / "no_spacing.dcm")
    small_cohort = tmp_path_factory.mktemp("small")
    write_cohort(small_cohort, 1, fmt="dicom", seed=9, size=96)
    write_dicom(
        renamed(pydicom.dcmread(small_cohort / "images" / "phantom_0001.dcm"), "SMALL"), folder / "small.dcm"
    )

    hu = source.pixel_array.astype(np.float32) - 1024.0
    hu[100:110, 100:110] = np.nan
    affine = np.diag([-0.8, -0.8, 1.0, 1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(hu.T[:, :, None]), affine), folder / "with_nan.nii.gz")
    return folder


def _segment(*args: str) -> int:
    return main(["segment", *args, "--device", "cpu", "--no-progress"])


# --- help and usage errors -------------------------------------------------------------------------
def test_help_answers_without_importing_torch() -> None:
    out = probe_cli(
        ["segment", "--help"],
        ["segment", "x", "--out", "o", "--cutoffs", "nope"],
        ["segment", "x", "--out", "o", "--vat-hu", "1"],
    )
    assert "heavy []" in out, out
    assert out.count("exit 2") == 2 and "exit 0" in out
    for option in ("--out DIR", "--bundle DIR", "--patients CSV", "--vat-hu MIN,MAX", "--cutoffs NAMES"):
        assert option in out
    for option in ("--resume", "--no-refine", "--no-progress", "--batch-size N", "--device {auto,cpu,cuda}"):
        assert option in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--vat-hu", "-50,-150"], "MIN must be below MAX"),
        (["--vat-hu", "fat"], "expected MIN,MAX in HU"),
        (
            ["--cutoffs", "prado2008,baumgartner1998"],
            "valid names are prado2008, martin2013, derstine2018, all",
        ),
        (["--batch-size", "0"], "expected a whole number >= 1"),
    ],
)
def test_bad_options_are_usage_errors(
    option: list[str], message: str, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        _segment(str(good), "--out", str(tmp_path / "o"), *option)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_nothing_to_segment_is_a_usage_error(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    assert _segment(str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--bundle", str(bundle)) == 2
    err = capsys.readouterr().err
    assert "lsmseg segment: error: no DICOM or NIfTI slices found in" in err and "Traceback" not in err
    assert _segment(str(tmp_path / "missing.dcm"), "--out", str(tmp_path / "o"), "--bundle", str(bundle)) == 2
    assert "input not found: " in capsys.readouterr().err


def test_a_bundle_without_weights_is_a_usage_error_saying_how_to_train(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    untrained = write_bundle(tmp_path / "untrained", None, TINY_SIZE, TINY_NGF)
    (untrained / "configs" / "train.json").write_text("{}")
    assert _segment(str(good), "--out", str(tmp_path / "o"), "--bundle", str(untrained)) == 2
    err = capsys.readouterr().err
    assert "has no trained weights (models/model.pt): train it first: python -m monai.bundle run" in err
    assert "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(
    good: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["segment", str(good), "--out", str(tmp_path / "o"), "--bundle", str(bundle), "--device", "cuda"]
    )
    assert code == 2
    assert "sees no CUDA GPU; use cpu (or auto)" in capsys.readouterr().err


# --- a cohort run --------------------------------------------------------------------------------
def test_a_mixed_folder_measures_the_good_slices_and_explains_each_bad_one(
    good: Path, mixed: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _segment(str(good), "--out", str(out), "--bundle", str(bundle)) == 0
    first_run = {p: p.read_bytes() for p in (out / "cases").rglob("*.*")}
    # 3 DICOM cases x mask, model mask, labels.json, overlay, SEG, SR
    assert len(first_run) == 18
    capsys.readouterr()

    assert _segment(str(mixed), "--out", str(out), "--bundle", str(bundle)) == 1
    stdout = capsys.readouterr().out
    rows = {r["case_id"]: r for r in read_csv(out / "results.csv")}
    assert {k for k, r in rows.items() if r["status"] == "ok"} == {
        "phantom_0001",
        "phantom_0002",
        "phantom_0003",
    }
    reasons = {k: r["error"] for k, r in rows.items() if r["status"] == "error"}
    # discovery spots truncation from the declared length when pydicom defers the pixel data;
    # a small file is read at once and fails at decoding, also naming the missing bytes
    assert "truncated.dcm" in reasons["TRUNCATED"]
    assert any(
        m in reasons["TRUNCATED"]
        for m in ("is truncated", "pixel data cannot be decoded", "less than expected")
    )
    assert "has Modality MR, not CT" in reasons["MRI"]
    assert "has no PixelSpacing: cannot compute muscle area in cm2" in reasons["NOSPACING"]
    assert "non-finite (NaN or inf) pixels" in reasons["with_nan"]
    assert "the image is 96x96 pixels" in reasons["SMALL"]
    assert len(reasons) == 5
    assert all(r["muscle_area_cm2"] == "" for r in rows.values() if r["status"] == "error")
    # the failures wrote nothing, and the earlier cases' files are still whole
    assert sorted(p.name for p in (out / "cases").iterdir()) == [
        "phantom_0001",
        "phantom_0002",
        "phantom_0003",
    ]
    for path, data in first_run.items():
        assert path.read_bytes() == data or path.suffix == ".dcm"  # a new SEG has new UIDs
    assert not list(out.rglob("*.tmp*"))
    # the summary: table, the failures with their reasons, the paths
    assert "case_id" in stdout and "muscle cm2" in stdout and "SMI" in stdout
    assert "5 case(s) failed:" in stdout and "MRI: " in stdout
    assert f"results: {out / 'results.csv'}" in stdout


def test_a_corrupted_rerun_leaves_the_earlier_outputs_intact(
    good: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    one = good / "phantom_0001.dcm"
    assert _segment(str(one), "--out", str(out), "--bundle", str(bundle)) == 0
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "cases").rglob("*.*")}
    broken = tmp_path / "phantom_0001.dcm"  # the same patient, now a truncated copy
    broken.write_bytes(one.read_bytes()[:5000])
    assert _segment(str(broken), "--out", str(out), "--bundle", str(bundle)) == 1
    assert all(p.read_bytes() == data and p.stat().st_mtime_ns == t for p, (data, t) in files.items())
    rows = read_csv(out / "results.csv")
    assert [(r["case_id"], r["status"]) for r in rows] == [("phantom_0001", "error")]
    json.loads((out / "results.json").read_text())  # complete, valid JSON
    assert "Traceback" not in capsys.readouterr().err


def test_resume_completes_only_the_missing_cases(
    good: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _segment(str(good / "phantom_0002.dcm"), "--out", str(out), "--bundle", str(bundle)) == 0
    kept = out / "cases" / "phantom_0002" / "mask.nii.gz"
    mtime = kept.stat().st_mtime_ns
    capsys.readouterr()
    assert _segment(str(good), "--out", str(out), "--bundle", str(bundle), "--resume") == 0
    stdout = capsys.readouterr().out
    assert "3 of 3 cases measured, 1 kept from the earlier run" in stdout
    assert kept.stat().st_mtime_ns == mtime
    assert [r["case_id"] for r in read_csv(out / "results.csv")] == [
        "phantom_0001",
        "phantom_0002",
        "phantom_0003",
    ]
