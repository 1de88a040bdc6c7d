"""The headline command as a user runs it: first lines with the setup, idle terms and ETAs; per-run logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsmseg.bundle.card import write_model_card
from lsmseg.bundle.runs import is_empty_run, prune_runs, run_dir
from lsmseg.data.phantom import write_cohort
from tests.helpers.bundles import REPO, copy_bundle

TINY = ["--max_epochs", "2", "--ngf", "4", "--ndf", "4", "--image_size", "64", "--batch_size", "2"]


def _train(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        str(bundle / "configs" / "train.json"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*cmd, *args], cwd=bundle.parent, env=env, capture_output=True, text=True, timeout=300
    )


def test_headline_command_says_what_it_trains_and_how_long_it_takes(tmp_path: Path) -> None:
    data = tmp_path / "sss"
    write_cohort(data, 10, fmt="nifti", seed=3, size=256)
    bundle = copy_bundle("lsm_sss", tmp_path)
    done = _train(bundle, "--dataset_dir", str(data), *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [
        line.split(" - INFO - ")[-1] for line in done.stdout.splitlines() if "lsmseg.engines.progress" in line
    ]
    assert lines[0].startswith(
        "training lsm on cpu: 7 rows (7 paired, 0 x-only, 0 y-only), 4 iterations per epoch"
    )
    assert "latent adversarial idle (adv_image, adv_label): no unpaired rows at proportion 1.0" in lines[0]
    assert (
        lines[1].startswith("epoch 1/2 iteration ")
        and "it/s, epoch ETA" in lines[1]
        and "run ETA" in lines[1]
    )
    runs = list((bundle / "eval" / "runs").iterdir())
    assert len(runs) == 1 and not is_empty_run(runs[0])
    # a second run into the same ckpt_dir refuses to replace the first one's model
    before = (bundle / "models" / "model.pt").read_bytes()
    again = _train(bundle, "--dataset_dir", str(data), *TINY)
    assert again.returncode != 0 and "--overwrite true" in again.stderr + again.stdout
    assert (bundle / "models" / "model.pt").read_bytes() == before


def test_runs_that_logged_nothing_are_pruned(tmp_path: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    empty, full = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    SummaryWriter(str(empty)).close()
    writer = SummaryWriter(str(full))
    writer.add_scalar("loss", 1.0, 1)
    writer.close()
    prune_runs(tmp_path)
    assert not empty.exists() and full.exists()


def test_only_rank_0_prunes_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun the other ranks log nothing: one that finished first must not delete rank
    0's run folder before its first summary (the folder looks empty until then)."""
    pytest.importorskip("torch.utils.tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "runs" / "rank0"
    SummaryWriter(str(folder)).close()  # rank 0 has not logged yet
    monkeypatch.setenv("RANK", "1")
    prune_runs(tmp_path)
    assert folder.exists()
    monkeypatch.setenv("RANK", "0")
    prune_runs(tmp_path)
    assert not folder.exists()
    monkeypatch.setenv("RANK", "1")
    assert not run_dir(tmp_path).startswith(str(tmp_path))  # rank 1's writers log elsewhere


def test_model_card_holds_the_bundles_own_figures(tmp_path: Path) -> None:
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text('{"miou": 0.5, "iou": {"muscle": 0.25}, "n": 2}')
    card = Path(write_model_card(tmp_path, tmp_path / "eval", tmp_path / "models")).read_text()
    assert "| miou | 0.5000 |" in card and "| iou muscle | 0.2500 |" in card and "| n | 2 |" in card
