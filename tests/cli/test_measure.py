"""``lsmseg measure``: instant help, usage errors (exit 2), the phantom's truth masks re-measured."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from lsmseg.cli.main import main
from lsmseg.data.phantom import write_cohort
from tests.helpers.cli import probe_cli
from tests.helpers.clinical import read_csv

AREAS = ("muscle_area_cm2", "imat_area_cm2", "sat_area_cm2", "vat_area_cm2")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two phantom DICOM slices with their truth masks (``masks/<case_id>.nii.gz``)."""
    folder = tmp_path_factory.mktemp("cohort")
    write_cohort(folder, 2, fmt="dicom", seed=6, size=256)
    return folder


def test_help_answers_without_importing_torch() -> None:
    out = probe_cli(
        ["measure", "--help"],
        ["measure", "x", "--out", "o"],
        ["measure", "x", "--masks", "m", "--out", "o", "--vat-hu", "1"],
    )
    assert "heavy []" in out, out
    assert out.count("exit 2") == 2 and "exit 0" in out
    for text in ("--masks DIR", "--out DIR", "--patients CSV", "--vat-hu MIN,MAX", "--no-refine"):
        assert text in out
    assert "multi-slice labelmap" in out and "<dataset>/masks/<case_id>.nii.gz" in out
    assert "the following arguments are required: --masks" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--masks", "{cohort}/nowhere"], "is not a folder"),
        (["--masks", "{cohort}/masks", "--cutoffs", "nope"], "nope"),
        (["--masks", "{cohort}/masks", "--patients", "{cohort}/missing.csv"], "missing.csv"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.format(cohort=cohort) for a in argv]
    # an unknown cut-off set is refused by argparse (SystemExit 2), the others by measure_cohort
    with pytest.raises(SystemExit) if "--cutoffs" in argv else contextlib.nullcontext():
        assert main(["measure", str(cohort / "images"), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results.csv").exists()


def test_truth_masks_give_the_truth_areas(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The phantom's truth masks measured: the areas its generator drew (Alberta protocol)."""
    out = tmp_path / "out"
    status = main(
        ["measure", str(cohort / "images"), "--masks", str(cohort / "masks"), "--out", str(out),
         "--patients", str(cohort / "patients.csv")]
    )  # fmt: skip
    assert status == 0, capsys.readouterr()
    rows = {r["case_id"]: r for r in read_csv(out / "results.csv")}
    truth = {r["case_id"]: r for r in read_csv(cohort / "truth.csv")}
    assert set(rows) == set(truth)
    for case_id, row in rows.items():
        assert row["status"] == "ok" and row["model"] == "lsmseg-measure"
        assert row["mask_source"].endswith(f"masks/{case_id}.nii.gz")
        for key in AREAS:
            assert float(row[key]) == pytest.approx(float(truth[case_id][key]), abs=0.0051), (
                key
            )  # results 0.01 cm2, truth 0.001
        assert (out / row["sr_file"]).is_file() and (out / row["overlay_file"]).is_file()


def test_a_case_without_mask_fails_alone(cohort: Path, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    (first, second) = sorted((cohort / "masks").iterdir())
    (masks / first.name).write_bytes(first.read_bytes())
    status = main(["measure", str(cohort / "images"), "--masks", str(masks), "--out", str(tmp_path / "o")])
    assert status == 1
    rows = {r["case_id"]: r for r in read_csv(tmp_path / "o" / "results.csv")}
    missing = second.name.removesuffix(".nii.gz")
    assert rows[missing]["status"] == "error"
    assert rows[missing]["error"].startswith(f"no mask for case {missing}: expected {missing}.nii.gz")
    assert rows[first.name.removesuffix(".nii.gz")]["status"] == "ok"
