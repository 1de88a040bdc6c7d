"""The sweep: every cell run once, rows and summaries written, failures reported, resumes skip
finished runs. The child process is a stand-in that trains nothing (known metrics)."""

import json
from pathlib import Path

import pytest

from lsmseg.errors import UsageError
from lsmseg.experiments import sweep
from lsmseg.experiments.grid import RunSpec, plan_runs
from lsmseg.experiments.tables import read_results, write_results
from tests.helpers.experiments import SIT_BUNDLE, fake_child_command, fake_metric

GRID = {"methods": ["basic", "lsm"], "proportions": [1.0, 0.5, 0.2], "seeds": [0]}


@pytest.fixture
def fake_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "child_command", fake_child_command)


def _run(out: Path, lines: list[str]) -> sweep.SweepReport:
    return sweep.run_sweep(
        SIT_BUNDLE, **GRID, out=out, overrides={"ngf": 4}, jobs=2, threads=1, log=lines.append
    )


def test_sweep_runs_each_cell_and_reports_failures(tmp_path: Path, fake_child: None) -> None:
    lines: list[str] = []
    report = _run(tmp_path, lines)
    assert len(report.ran) == 6 and lines[0].startswith("sweep: 6 run(s) to do, 0 already")
    # The stand-in fails at proportion 0.5: those runs are reported, not written.
    assert sorted(s.name for s, _ in report.failed) == ["basic_p0.5_s0", "lsm_p0.5_s0"]
    assert all(log.endswith("run.log") for _, log in report.failed)
    rows = read_results(report.results_csv)
    assert [(r["method"], r["proportion"]) for r in rows] == [
        ("basic", "1"), ("basic", "0.2"), ("lsm", "1"), ("lsm", "0.2"),
    ]  # fmt: skip
    for r in rows:
        assert r["metric"] == pytest.approx(fake_metric(r["method"], float(r["proportion"]), 0))
        assert (r["best_epoch"], r["epochs"], r["threads"], r["cpu_seconds"], r["floor"]) == (
            2,
            4,
            1,
            1.5,
            0.3,
        )
    summary = (tmp_path / "summary.md").read_text()
    assert "| lsm | 0.600 ± 0.000 (0.600–0.600, n=1) | 0.200 ± 0.000 (0.200–0.200, n=1) * |" in summary
    assert "| floor | 0.300 | 0.300 |" in summary
    assert report.plot_png == tmp_path / "sweep.png"
    run = tmp_path / "runs" / "lsm_p0.2_s0"
    spec = json.loads((run / "spec.json").read_text())
    assert spec["overrides"]["ngf"] == 4 and spec["overrides"]["ckpt_dir"] == str(run / "ckpt")
    assert "--method lsm" in (run / "commands.sh").read_text()


def test_a_resumed_sweep_runs_only_what_is_missing(tmp_path: Path, fake_child: None) -> None:
    _run(tmp_path, [])
    done = tmp_path / "runs" / "lsm_p1_s0" / "result.json"
    stamp = done.stat().st_mtime_ns
    lines: list[str] = []
    report = _run(tmp_path, lines)
    # Only the two failed runs are tried again.
    assert sorted(s.name for s in report.ran) == ["basic_p0.5_s0", "lsm_p0.5_s0"]
    assert lines[0].startswith("sweep: 2 run(s) to do, 4 already")
    rows = read_results(tmp_path / "results.csv")
    write_results(
        [r for r in rows if r["method"] != "basic" or r["proportion"] != "1"], tmp_path / "results.csv"
    )
    report = _run(tmp_path, [])
    assert {s.name for s in report.ran} == {"basic_p1_s0", "basic_p0.5_s0", "lsm_p0.5_s0"}
    assert len(read_results(tmp_path / "results.csv")) == 4 and done.stat().st_mtime_ns == stamp


def test_pending_runs_match_rows_on_canonical_proportions() -> None:
    plan = plan_runs(["lsm"], [1.0, 0.05], [0, 1])
    rows = [
        {"method": "lsm", "proportion": "1.0", "seed": "0"},
        {"method": "lsm", "proportion": 0.05, "seed": 1},
    ]
    assert sweep.pending_runs(plan, rows) == [RunSpec("lsm", 0.05, 0), RunSpec("lsm", 1.0, 1)]


def test_a_resumed_sweep_must_keep_its_settings(tmp_path: Path) -> None:
    sweep.check_settings(tmp_path, {"preset": "cpu", "overrides": {"ngf": 8}})
    sweep.check_settings(tmp_path, {"preset": "cpu", "overrides": {"ngf": 8}})  # same: fine
    with pytest.raises(UsageError, match="other settings \\(overrides differ\\)"):
        sweep.check_settings(tmp_path, {"preset": "cpu", "overrides": {"ngf": 16}})


def test_bad_grids_fail_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method 'gan'"):
        sweep.run_sweep(SIT_BUNDLE, ["gan"], [1.0], [0], tmp_path / "a")
    with pytest.raises(ValueError, match="proportion"):
        sweep.run_sweep(SIT_BUNDLE, ["lsm"], [1.5], [0], tmp_path / "b")
    with pytest.raises(UsageError, match="unknown preset"):
        sweep.run_sweep(SIT_BUNDLE, ["lsm"], [1.0], [0], tmp_path / "c", preset="gpu")
    assert list(tmp_path.iterdir()) == []


def test_old_import_path_is_the_same_code() -> None:
    import lsmseg.sweep

    assert lsmseg.sweep.run_sweep is sweep.run_sweep and lsmseg.sweep.RunSpec is RunSpec
