"""The training run says what it trains, what is idle and why, and how long it will take."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import torch
from monai.data import DataLoader, Dataset

from lsmseg.engines import SemiSupervisedTrainer
from lsmseg.engines.progress import TrainingProgress, describe_terms
from lsmseg.keys import Mode
from lsmseg.methods import method_stages
from tests.helpers.methods import mixed_batch, tiny_lsm


def test_all_pairs_leave_the_latent_adversarial_idle_and_say_why() -> None:
    stage = method_stages("lsm", ["image", "label"])[0]
    text = describe_terms(stage, Counter({Mode.PAIRED: 8}), "image", 1.0)
    assert "latent adversarial idle (adv_image, adv_label): no unpaired rows at proportion 1.0" in text
    assert text.startswith("active terms: ") and "sup_image2label" in text.split(";")[0]


def test_no_pairs_leave_the_supervised_terms_idle() -> None:
    stage = method_stages("lsm", ["image", "label"])[0]
    text = describe_terms(stage, Counter({Mode.X_ONLY: 4, Mode.Y_ONLY: 4}), "image", 0.0)
    assert "supervised idle (sup_image2label, sup_label2image): no paired rows" in text
    assert "adv_image" in text.split(";")[0]  # active


def test_start_line_and_eta_lines(caplog: pytest.LogCaptureFixture) -> None:
    batch = mixed_batch()
    rows = [{k: v[i] for k, v in batch.items()} for i in range(len(batch["mode"]))]
    trainer = SemiSupervisedTrainer(
        "cpu", 2, DataLoader(Dataset(rows), batch_size=2), tiny_lsm(), method="lsm"
    )
    TrainingProgress(every=3, proportion=0.5, bar=False).attach(trainer)
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="lsmseg.engines.progress"):
        trainer.run()
    lines = [r.getMessage() for r in caplog.records if r.name == "lsmseg.engines.progress"]
    assert lines[0].startswith(
        "training lsm on cpu: 6 rows (2 paired, 2 x-only, 2 y-only), 3 iterations per epoch"
    )
    assert "idle" not in lines[0]  # every kind of row is there: every term trains
    # the second iteration (first timed without warm-up), then every 3rd: 2, 3 in epoch 1; 3 in epoch 2
    assert [line.split(":")[0] for line in lines[1:]] == [
        "epoch 1/2 iteration 2/3",
        "epoch 1/2 iteration 3/3",
        "epoch 2/2 iteration 3/3",
    ]
    assert "it/s, epoch ETA 0:00:0" in lines[1] and "run ETA" in lines[1] and "at max_epochs 2" in lines[1]
