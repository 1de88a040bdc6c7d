"""A tiny resumable training run (SIT rings, 32 px, ngf 4) for the resume and signal tests.

Run as ``python -m tests.helpers.training CKPT_DIR EPOCHS [--overwrite]``: it prints
``iteration E I`` after every iteration (so a test knows when to kill it mid-epoch) and trains
with validation, early stopping, ``model.pt`` and the resumable checkpoint.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator
from monai.handlers import MeanIoUHandler, from_engine
from monai.transforms import AsDiscreted
from monai.utils import set_determinism

from lsmseg.data.sit import generate_sit, make_rows
from lsmseg.data.split import row_sampler
from lsmseg.engines import SemiSupervisedTrainer, StagedEarlyStopping
from lsmseg.engines.resume import ResumableCheckpoint
from lsmseg.methods import Domain, LatentSpaceMapping

PACE_S = 0.05  # per iteration, so a signal reliably lands mid-epoch


def build(ckpt_dir: Path, epochs: int, overwrite: bool = False, method: str = "lsm") -> SemiSupervisedTrainer:
    """Trainer (and its validator) of the tiny run; seeded like a bundle's ``initialize``."""
    set_determinism(seed=0)
    rows = make_rows(*generate_sit(24, size=32, seed=0), proportion=0.5)
    net = LatentSpaceMapping(
        [Domain("image", "image", 1), Domain("label", "mask", 2)], ngf=4, ndf=4, image_size=32
    )
    early = StagedEarlyStopping(patience=50, ckpt_path=ckpt_dir / "model.pt")
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(rows["valid"], batch_size=8),
        network=net,
        postprocessing=AsDiscreted(keys=["pred", "label"], argmax=[True, False], to_onehot=[2, 2]),
        key_val_metric={
            "iou": MeanIoUHandler(include_background=False, output_transform=from_engine(["pred", "label"]))
        },
        val_handlers=[early],
    )
    loader = DataLoader(rows["train"], batch_size=4, sampler=row_sampler(rows["train"], seed=0))
    trainer = SemiSupervisedTrainer("cpu", epochs, loader, net, method=method)
    early.set_trainer(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: evaluator.run())
    ResumableCheckpoint(ckpt_dir, early_stop=early, overwrite=overwrite).attach(trainer)
    return trainer


def main() -> None:
    ckpt_dir, epochs = Path(sys.argv[1]), int(sys.argv[2])
    trainer = build(ckpt_dir, epochs, overwrite="--overwrite" in sys.argv)

    @trainer.on(Events.ITERATION_COMPLETED)
    def _report(engine: SemiSupervisedTrainer) -> None:
        print(f"iteration {engine.state.epoch} {engine.state.iteration}", flush=True)
        time.sleep(PACE_S)

    trainer.run()


if __name__ == "__main__":
    main()
