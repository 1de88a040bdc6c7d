"""``lsmseg sweep``: the grid is run, written, plotted and resumed; usage errors are one line."""

import csv
import json
from pathlib import Path

import pytest

from lsmseg.cli.main import main
from lsmseg.sweep import (
    RESULT_COLUMNS,
    RunSpec,
    bundle_commands,
    check_settings,
    markdown_table,
    plan_runs,
    plot,
    read_results,
    summarise,
    write_results,
)

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lsm_sit"


@pytest.fixture(scope="module")
def tiny_sit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 SIT pairs at 32 px (21 train / 3 valid / 6 test)."""
    from lsmseg.data.sit import generate_sit, write_sit_folder

    folder = tmp_path_factory.mktemp("sit32")
    write_sit_folder(folder, *generate_sit(30, size=32, seed=0))
    return folder


def _sweep_args(out: Path, data: Path) -> list[str]:
    return [
        "sweep", "--bundle", str(BUNDLE), "--methods", "basic,lsm", "--proportions", "1,0.2",
        "--seeds", "1", "--out", str(out), "--max-epochs", "1", "--patience", "1",
        "--set", f"dataset_dir={data}", "--set", "image_size=32", "--set", "ngf=4", "--set", "ndf=4",
        "--set", "batch_size=8", "--jobs", "2", "--threads", "1",
    ]  # fmt: skip


@pytest.mark.slow
def test_tiny_sweep_writes_results_and_plot_then_resumes(tmp_path: Path, tiny_sit: Path, capsys) -> None:
    out = tmp_path / "sweep"
    assert main(_sweep_args(out, tiny_sit)) == 0
    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == RESULT_COLUMNS
    assert {(r["method"], r["proportion"], r["seed"]) for r in rows} == {
        ("basic", "1", "0"), ("lsm", "1", "0"), ("basic", "0.2", "0"), ("lsm", "0.2", "0"),
    }  # fmt: skip
    for r in rows:
        assert 0.0 <= float(r["metric"]) <= 1.0 and r["metric_name"] == "miou"
        assert int(r["best_epoch"]) == 1 and int(r["epochs"]) == 1 and float(r["seconds"]) > 0
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    run = out / "runs" / "lsm_p0.2_s0"
    assert json.loads((run / "ckpt" / "best.json").read_text())["best_epoch"] == 1
    assert (run / "ckpt" / "model.pt").is_file() and (run / "output" / "metrics.json").is_file()
    assert "monai.bundle run --config_file" in (run / "commands.sh").read_text()
    capsys.readouterr()

    # A second invocation runs nothing.
    assert main(_sweep_args(out, tiny_sit)) == 0
    assert "0 run(s) to do, 4 already" in capsys.readouterr().out

    # With a row lost (an interrupted sweep), only that run runs again.
    kept = [r for r in rows if not (r["method"] == "basic" and r["proportion"] == "0.2")]
    write_results(kept, out / "results.csv")
    untouched = (out / "runs" / "lsm_p1_s0" / "result.json").stat().st_mtime_ns
    assert main(_sweep_args(out, tiny_sit)) == 0
    assert "1 run(s) to do, 3 already" in capsys.readouterr().out
    assert len(read_results(out / "results.csv")) == 4
    assert (out / "runs" / "lsm_p1_s0" / "result.json").stat().st_mtime_ns == untouched


def test_unknown_method_is_a_one_line_usage_error(tmp_path: Path, capsys) -> None:
    args = ["sweep", "--bundle", str(BUNDLE), "--methods", "lsm,gan", "--proportions", "1"]
    assert main([*args, "--seeds", "1", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown method 'gan'" in err and "valid: basic, sop, ioda, lsm" in err
    assert not (tmp_path / "s").exists()


def test_missing_bundle_is_a_usage_error(tmp_path: Path, capsys) -> None:
    args = ["sweep", "--bundle", str(tmp_path), "--methods", "lsm", "--proportions", "1", "--seeds", "1"]
    assert main([*args, "--out", str(tmp_path / "s")]) == 2
    assert "is not a bundle with configs/train.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--proportions", "1,1.5", "not in (0, 1]"),
        ("--seeds", "0", "whole number >= 1"),
        ("--set", "ngf", "KEY=VALUE"),
    ],
)
def test_bad_options_are_rejected_by_the_parser(
    tmp_path: Path, capsys, flag: str, value: str, message: str
) -> None:
    args = {
        "--bundle": str(BUNDLE),
        "--methods": "lsm",
        "--proportions": "1",
        "--seeds": "1",
        "--out": str(tmp_path),
    }
    args[flag] = value
    with pytest.raises(SystemExit) as e:
        main(["sweep", *[x for kv in args.items() for x in kv]])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_resumed_sweep_must_keep_its_settings(tmp_path: Path) -> None:
    check_settings(tmp_path, {"preset": "cpu", "overrides": {"ngf": 8}})
    check_settings(tmp_path, {"preset": "cpu", "overrides": {"ngf": 8}})  # same: fine
    with pytest.raises(ValueError, match="other settings \\(overrides differ\\)"):
        check_settings(tmp_path, {"preset": "cpu", "overrides": {"ngf": 16}})


def _rows() -> list[dict]:
    values = {("lsm", "1"): [0.7, 0.8], ("lsm", "0.05"): [0.3, 0.5], ("basic", "1"): [0.6, 0.6]}
    return [
        {"method": m, "proportion": p, "seed": s, "metric": v, "best_epoch": 3 + s, "seconds": 10.0,
         "metric_name": "miou", "valid_metric": v, "epochs": 8, "threads": 1, "load_1m": 0.5}
        for (m, p), vs in values.items()
        for s, v in enumerate(vs)
    ]  # fmt: skip


def test_summary_statistics_and_table() -> None:
    cells = {(c.method, c.proportion): c for c in summarise(_rows())}
    lsm = cells["lsm", 0.05]
    assert lsm.n == 2 and lsm.mean == pytest.approx(0.4) and lsm.lo == 0.3 and lsm.hi == 0.5
    assert lsm.std == pytest.approx(0.1414, abs=1e-4) and lsm.best_epoch == 3.5
    assert cells["basic", 1.0].std == 0.0
    table = markdown_table(_rows(), ["basic", "lsm"])
    lines = table.splitlines()
    assert lines[0] == "| method | 100 % | 5 % |"
    assert lines[2].startswith("| basic | 0.600 ± 0.000") and lines[2].endswith("| - |")
    assert "0.400 ± 0.141 (0.300–0.500, n=2)" in lines[3]


def test_results_round_trip_and_plot(tmp_path: Path) -> None:
    write_results(_rows(), tmp_path / "results.csv")
    back = read_results(tmp_path / "results.csv")
    assert len(back) == 6 and back[0]["method"] == "basic" and back[-1]["proportion"] == "0.05"
    assert plot(back, tmp_path / "p.png", ["basic", "lsm"]).stat().st_size > 1000


def test_grid_and_equivalent_commands(tmp_path: Path) -> None:
    runs = plan_runs(["basic", "lsm"], [1.0, 0.05], [0, 1])
    assert len(runs) == 8 and runs[0] == RunSpec("basic", 1.0, 0) and runs[-1].name == "lsm_p0.05_s1"
    text = bundle_commands(BUNDLE, {"method": "lsm", "lambdas": {"adv": 0.5}})
    assert f"--config_file \"['{BUNDLE}/configs/train.json','{BUNDLE}/configs/evaluate.json']\"" in text
    assert "--lambdas '{\"adv\": 0.5}'" in text
