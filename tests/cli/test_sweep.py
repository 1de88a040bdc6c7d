"""``lsmseg sweep``: options reach the library, usage errors are one line, and (slow) a tiny
sweep trains, tests, writes and resumes end to end."""

import csv
import json
from pathlib import Path

import pytest

from lsmseg.cli.main import main
from lsmseg.experiments.tables import RESULT_COLUMNS, read_results, write_results
from tests.helpers.experiments import SIT_BUNDLE, write_tiny_sit


@pytest.fixture(scope="module")
def tiny_sit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sit(tmp_path_factory.mktemp("sit32"))


def _sweep_args(out: Path, data: Path) -> list[str]:
    return [
        "sweep", "--bundle", str(SIT_BUNDLE), "--methods", "basic,lsm", "--proportions", "1,0.2",
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
        assert (
            0.0 <= float(r["metric"]) <= 1.0 and r["metric_name"] == "miou" and 0.0 < float(r["floor"]) < 1.0
        )
        assert int(r["best_epoch"]) == 1 and int(r["epochs"]) == 1 and float(r["seconds"]) > 0
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    run = out / "runs" / "lsm_p0.2_s0"
    assert json.loads((run / "ckpt" / "best.json").read_text())["best_epoch"] == 1
    assert (run / "ckpt" / "model.pt").is_file() and (run / "output" / "metrics.json").is_file()
    assert "monai.bundle run --config_file" in (run / "commands.sh").read_text()
    stdout = capsys.readouterr().out
    assert "| method | 100 % | 20 % |" in stdout and "4 run(s) done" in stdout

    # With a row lost (an interrupted sweep), only that run runs again.
    kept = [
        r for r in read_results(out / "results.csv") if (r["method"], r["proportion"]) != ("basic", "0.2")
    ]
    write_results(kept, out / "results.csv")
    assert main(_sweep_args(out, tiny_sit)) == 0
    assert "1 run(s) to do, 3 already" in capsys.readouterr().out
    assert len(read_results(out / "results.csv")) == 4


def test_unknown_method_is_a_one_line_usage_error(tmp_path: Path, capsys) -> None:
    args = ["sweep", "--bundle", str(SIT_BUNDLE), "--methods", "lsm,gan", "--proportions", "1"]
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
        "--bundle": str(SIT_BUNDLE),
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


def test_options_become_the_sweep_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lsmseg.experiments import sweep

    seen: dict = {}

    def fake_run_sweep(bundle, methods, proportions, seeds, out, **kw):  # type: ignore[no-untyped-def]
        seen.update(bundle=bundle, methods=methods, proportions=proportions, seeds=seeds, **kw)
        return sweep.SweepReport([], [], [], 0.0, tmp_path / "results.csv", None)

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    args = ["sweep", "--bundle", "b", "--methods", "lsm,basic", "--proportions", "1,0.05", "--seeds", "3"]
    extra = ["--max-epochs", "5", "--set", 'lambdas={"adv": 1}', "--set", "adversarial=bce", "--jobs", "2"]
    assert main([*args, "--out", str(tmp_path), *extra]) == 0
    assert (
        seen["methods"] == ["lsm", "basic"]
        and seen["proportions"] == [1.0, 0.05]
        and seen["seeds"] == [0, 1, 2]
    )
    assert seen["overrides"] == {"lambdas": {"adv": 1}, "adversarial": "bce", "max_epochs": 5}
    assert (seen["jobs"], seen["threads"], seen["preset"]) == (2, None, "paper")
