"""A killed or interrupted training run resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lsmseg.engines.resume import ResumableCheckpoint

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 3
KILL_AT = "iteration 2 6"  # epoch 2 of 3, mid-epoch (4 iterations per epoch)


def _train(ckpt_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tests.helpers.training", str(ckpt_dir), str(EPOCHS), *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _train_until_killed(ckpt_dir: Path, sig: signal.Signals) -> tuple[int, str]:
    """Start the tiny run, send ``sig`` once it is mid-epoch 2; (exit status, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tests.helpers.training", str(ckpt_dir), str(EPOCHS)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == KILL_AT:
            proc.send_signal(sig)
            break
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _final(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(ckpt_dir / "resume.pt", weights_only=True)
    assert saved["finished"]
    return saved["network"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ckpt_dir = tmp_path_factory.mktemp("whole")
    done = _train(ckpt_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    return ckpt_dir


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_run_resumes_to_the_uninterrupted_weights(
    sig: signal.Signals, uninterrupted: Path, tmp_path: Path
) -> None:
    rc, err = _train_until_killed(tmp_path, sig)
    best_after_kill = (tmp_path / "model.pt").read_bytes()
    torch.load(tmp_path / "model.pt", weights_only=True)  # the earlier best is whole
    if sig == signal.SIGINT:
        assert rc == 130
        assert "Traceback" not in err
        assert "training stopped by SIGINT in epoch 2; epoch 1 is saved in" in err and "--resume true" in err
    else:
        assert rc == -signal.SIGKILL
    saved = torch.load(tmp_path / "resume.pt", weights_only=True)
    assert (saved["epoch"], saved["finished"]) == (1, False)  # the last completed epoch
    # A rerun into the same folder continues (no --resume needed) and ends where the whole run did.
    resumed = _train(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.splitlines()[0] == "iteration 2 5"  # epoch 2 again, not epoch 1
    _assert_same_weights(_final(tmp_path), _final(uninterrupted))
    _assert_same_weights(
        torch.load(tmp_path / "model.pt", weights_only=True),
        torch.load(uninterrupted / "model.pt", weights_only=True),
    )
    assert best_after_kill  # written atomically: never a torn file


def test_a_new_run_never_replaces_an_earlier_model_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"earlier best")
    with pytest.raises(SystemExit, match="--overwrite true"):
        ResumableCheckpoint(tmp_path)
    ResumableCheckpoint(tmp_path, overwrite=True)  # asked: allowed
    assert (tmp_path / "model.pt").read_bytes() == b"earlier best"  # nothing written before training


def test_resume_true_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="there is none"):
        ResumableCheckpoint(tmp_path, resume=True)
