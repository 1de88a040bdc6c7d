"""Handlers of the training workflow: early stopping with best-weight restore, per stage."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from ignite.engine import Engine, Events

from lsmseg.engines.record import ModelRecord, write_model_record
from lsmseg.io.atomic import atomic_write

logger = logging.getLogger(__name__)


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write a state dict atomically (temp file in the same folder, then rename)."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


class StagedEarlyStopping:
    """Early stopping with best-weight restore, stage by stage, and the best checkpoint.

    Attached to the validator; after each validation it scores the trainer's current stage:
    the validator's key metric when the stage trains the main translation, else minus the
    stage's validation loss (IODA's auto-encoder pre-training). A stage ends when the score has
    not improved for ``patience`` validations or its epoch budget is spent; its best weights are
    restored before the next stage starts. The best weights of the final stage are saved to
    ``ckpt_path`` whenever they improve and restored when training ends.

    Why not MONAI's ``EarlyStopHandler`` + ``CheckpointSaver``: early stopping there terminates
    the whole run, while IODA must end a stage, restore that stage's best weights and go on;
    its pre-training stages have no key metric and are scored by their validation loss; and
    only the final stage's best may become ``model.pt`` (with ``model.json`` beside it). Those
    handlers remain the right choice for single-stage workflows without weight restore.

    Args:
        patience: validations without improvement before a stage stops (paper: 100 epochs).
        ckpt_path: where the best model's state dict goes (``<ckpt_dir>/model.pt``).
        trainer: the :class:`SemiSupervisedTrainer`; may be set later with ``set_trainer``
            (bundle configs do so to avoid a circular reference).
        min_delta: smallest improvement that counts.
        mode: ``max`` when a higher key metric is better (IoU), ``min`` when lower is (NRMSE).
            Stages without the translation always minimise their validation loss.
        record: what the network is (``network``, ``preprocessing``, ``class_names`` and a
            ``training`` dict of run settings, see :mod:`lsmseg.engines.record`); written as
            ``model.json`` beside ``ckpt_path`` with every saved checkpoint, its ``training``
            completed by the best metric and epoch, epochs run and whether the run finished.
    """

    def __init__(
        self,
        patience: int,
        ckpt_path: str | Path | None = None,
        trainer: Any = None,
        min_delta: float = 0.0,
        mode: Literal["max", "min"] = "max",
        record: Mapping[str, Any] | None = None,
    ) -> None:
        if int(patience) < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        # Scores are maximised internally; a lower-is-better metric enters with its sign flipped.
        self.sign = 1.0 if mode == "max" else -1.0
        self.patience = int(patience)
        self.ckpt_path = Path(ckpt_path) if ckpt_path else None
        self.min_delta = float(min_delta)
        self.mode = mode
        self.record = dict(record) if record is not None else None
        self.trainer: Any = None
        self._reset()
        self.best_metric = -self.sign * math.inf  # of the final stage: what the checkpoint holds
        self.best_epoch = 0
        if trainer is not None:
            self.set_trainer(trainer)

    def _reset(self) -> None:
        self.best_score = -math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to stop where an uninterrupted one would (see ``resume``)."""
        return {
            "best_score": self.best_score,
            "best_state": self.best_state,
            "wait": self.wait,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metric_name": getattr(self, "_metric_name", None),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best_score, self.best_state, self.wait = state["best_score"], state["best_state"], state["wait"]
        self.best_metric, self.best_epoch = state["best_metric"], state["best_epoch"]
        if state["metric_name"] is not None:
            self._metric_name = state["metric_name"]

    def set_trainer(self, trainer: Any) -> None:
        """Bind the trainer (and become its stage controller)."""
        self.trainer = trainer
        trainer.stage_controller = self
        if not trainer.has_event_handler(self._restore_at_end, Events.COMPLETED):
            trainer.add_event_handler(Events.COMPLETED, self._restore_at_end)

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.COMPLETED, self)

    def _scores_metric(self) -> bool:
        """Whether the current stage is scored by the key metric (it trains the main translation)."""
        x, y = self.trainer.network.names[:2]
        return bool(self.trainer.stage.trains(x, y))

    def _score(self, evaluator: Any) -> float:
        """Score of the current stage; ``evaluator`` is a MONAI evaluator (key metric, data_loader)."""
        trainer = self.trainer
        if self._scores_metric():
            value = evaluator.state.metrics[evaluator.state.key_metric_name]
            return self.sign * float(value)
        return -trainer.stage_loss(evaluator.data_loader)

    def __call__(self, evaluator: Engine) -> None:
        trainer = self.trainer
        if trainer is None:
            raise RuntimeError("StagedEarlyStopping has no trainer: call set_trainer(trainer) first")
        score = self._score(evaluator)
        if not math.isfinite(score):
            logger.warning(f"validation score is {score} at epoch {trainer.state.epoch}; not an improvement")
        if math.isfinite(score) and score > self.best_score + self.min_delta:
            self.best_score, self.wait = score, 0
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in trainer.network.state_dict().items()}
            )
            if trainer.is_final_stage:
                metric = self.sign * score  # the key metric itself, not the internal score
                self.best_metric, self.best_epoch = metric, trainer.state.epoch
                trainer.state.best_metric, trainer.state.best_metric_epoch = metric, trainer.state.epoch
                if self.ckpt_path is not None:
                    save_state_dict(self.best_state, self.ckpt_path)
                    self._write_record(
                        finished=False, metric_name=getattr(evaluator.state, "key_metric_name", None)
                    )
        else:
            self.wait += 1
        budget_spent = trainer.state.epoch - trainer.stage_start_epoch >= trainer.stage_epochs
        if self.wait >= self.patience or budget_spent:
            self._restore()
            # Report what was scored: the key metric itself (sign undone), or minus the stage loss.
            shown = self.sign * self.best_score if self._scores_metric() else self.best_score
            logger.info(
                f"stage {trainer.stage.name} ends at epoch {trainer.state.epoch} "
                f"(best {shown:.4f}, {'budget' if budget_spent else 'patience'})"
            )
            if trainer.next_stage():
                self._reset()

    def _restore(self) -> None:
        if self.best_state is not None:
            self.trainer.network.load_state_dict(self.best_state)

    def _restore_at_end(self, engine: Engine) -> None:
        self._restore()
        self._write_record(finished=True)

    def _write_record(self, finished: bool, metric_name: str | None = None) -> None:
        """``model.json`` beside the checkpoint: the network as data plus how training went."""
        if self.record is None or self.ckpt_path is None or not self.ckpt_path.is_file():
            return
        record = ModelRecord(
            network=self.record["network"],
            preprocessing=dict(self.record.get("preprocessing") or {}),
            class_names=list(self.record.get("class_names") or []),
            training=dict(self.record.get("training") or {}),
        )
        trainer = self.trainer
        if metric_name is not None:
            self._metric_name = metric_name
        record.training.update(
            metric=getattr(self, "_metric_name", None),
            mode=self.mode,
            best_metric=float(self.best_metric) if math.isfinite(self.best_metric) else None,
            best_epoch=int(self.best_epoch),
            epochs_run=int(trainer.state.epoch),
            max_epochs=int(trainer.state.max_epochs or 0),
            finished=bool(finished),
        )
        write_model_record(record, self.ckpt_path)
