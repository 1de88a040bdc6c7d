"""``ckpt_export`` works as the bundle docs write it, and the export computes what the bundle does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lsmseg.bundle import model_record
from tests.helpers.bundles import BUNDLES, REPO, copy_bundle, write_untrained_model

SMALL = {"ngf": 4, "ndf": 4, "image_size": 64}  # 64: the smallest the 300-W landmark head takes


def _export(bundle: Path) -> Path:
    """The documented command, run from the folder holding the bundle."""
    out = bundle / "models" / "model.ts"
    cmd = [
        sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def",
        "--filepath", str(out),
        "--ckpt_file", str(bundle / "models" / "model.pt"),
        "--meta_file", str(bundle / "configs" / "metadata.json"),
        "--config_file", str(bundle / "configs" / "inference.json"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=bundle.parent, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize(
    "bundle", [pytest.param(b, marks=[] if b == "lsm_sss" else pytest.mark.slow) for b in BUNDLES]
)
def test_ckpt_export_round_trip(bundle: str, tmp_path: Path) -> None:
    copy = copy_bundle(bundle, tmp_path)
    write_untrained_model(copy, **SMALL)
    exported = torch.jit.load(str(_export(copy)))
    record = model_record(copy / "models")
    network = record.build()
    network.load_state_dict(torch.load(copy / "models" / "model.pt", weights_only=True))
    network.eval()
    channels = record.network["args"]["domains"][0]["channels"]
    x = torch.rand(
        3, channels, 64, 64, generator=torch.Generator().manual_seed(0)
    )  # batch 3: not the traced 1
    with torch.no_grad():
        assert torch.equal(exported(x), network(x))
