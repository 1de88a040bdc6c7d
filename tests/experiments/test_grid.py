"""The grid: cells in a known order, preset overrides, and the equivalent bundle commands."""

import json
import shlex
from pathlib import Path

import pytest

from lsmseg.errors import UsageError
from lsmseg.experiments import grid
from lsmseg.experiments.grid import RunSpec, bundle_commands, fmt_proportion, plan_runs, run_overrides
from tests.helpers.experiments import SIT_BUNDLE


def test_grid_is_proportion_major_with_canonical_names() -> None:
    runs = plan_runs(["basic", "lsm"], [1.0, 0.05], [0, 1])
    assert [r.name for r in runs[:4]] == ["basic_p1_s0", "lsm_p1_s0", "basic_p0.05_s0", "lsm_p0.05_s0"]
    assert len(runs) == 8 and runs[-1] == RunSpec("lsm", 0.05, 1)
    assert runs[2].key == ("basic", "0.05", 0)
    assert [fmt_proportion(p) for p in (1, "1.0", 0.2, "0.050")] == ["1", "1", "0.2", "0.05"]


def test_run_overrides_put_the_cell_and_folders_over_the_sweep_settings(tmp_path: Path) -> None:
    base = {"ngf": 8, "seed": 99, "method": "basic"}
    got = run_overrides(RunSpec("lsm", 0.2, 1), base, tmp_path / "r", SIT_BUNDLE)
    assert got == {
        "ngf": 8, "method": "lsm", "proportion": 0.2, "seed": 1, "bundle_root": str(SIT_BUNDLE),
        "ckpt_dir": str(tmp_path / "r" / "ckpt"), "output_dir": str(tmp_path / "r" / "output"),
    }  # fmt: skip


def test_equivalent_commands_quote_configs_and_json_values() -> None:
    text = bundle_commands(SIT_BUNDLE, {"method": "lsm", "lambdas": {"adv": 0.5}, "amp": True})
    train, both = text.splitlines()[2:]
    configs = SIT_BUNDLE / "configs"
    assert shlex.split(both)[5] == f"['{configs}/train.json','{configs}/evaluate.json']"
    assert shlex.split(train)[5] == f"['{configs}/train.json']"
    words = shlex.split(both)[6:]
    assert words == ["--method", "lsm", "--lambdas", '{"adv": 0.5}', "--amp", "true"]


def test_cpu_preset_points_sit_bundles_at_a_64px_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid, "sit_folder", lambda size: f"/cache/sit-{size}px")
    got = grid.preset_overrides(SIT_BUNDLE, "cpu")
    assert got == {**grid.PRESETS["cpu"], "image_size": 64, "dataset_dir": "/cache/sit-64px"}
    assert grid.preset_overrides(SIT_BUNDLE, "paper") == {}
    with pytest.raises(UsageError, match="unknown preset 'gpu'; valid: paper, cpu"):
        grid.preset_overrides(SIT_BUNDLE, "gpu")


def test_sit_folder_is_generated_once_at_the_size_asked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LSMSEG_DATA", str(tmp_path))
    folder = Path(grid.sit_folder(16, n=4, seed=0))
    assert folder == tmp_path / "sit-n4-s0-16px-v1"
    from lsmseg.data.sit import read_sit_folder

    x, y = read_sit_folder(folder)
    assert x.shape == (4, 1, 16, 16) and y.shape == (4, 1, 16, 16)
    stamp = folder.stat().st_mtime_ns
    assert grid.sit_folder(16, n=4, seed=0) == str(folder) and folder.stat().st_mtime_ns == stamp


def test_a_folder_without_configs_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match=r"is not a bundle with configs/evaluate\.json"):
        grid.check_bundle(tmp_path)
    assert grid.check_bundle(SIT_BUNDLE) == SIT_BUNDLE.resolve()
