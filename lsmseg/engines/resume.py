"""The resumable checkpoint: everything a stopped training run needs to go on as if it never stopped.

Written atomically to ``<ckpt_dir>/resume.pt`` after every epoch (after validation, early
stopping and stage changes of that epoch): network and image-critic weights, optimisers, the
loss scaler, epoch and iteration, the stage, the early-stopping state (best score and weights,
patience count, best metric and epoch) and every random state that decides what comes next
(torch, CUDA, NumPy, Python, the training sampler's generator). A run resumed from it repeats
the epochs after the saved one exactly: a killed run ends with the weights an uninterrupted
run with the same seed would have. A kill mid-epoch loses only that epoch's partial work.

A new run never replaces a previous run's ``model.pt`` unless asked (``overwrite``).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from lsmseg.errors import fail
from lsmseg.io.atomic import atomic_write

logger = logging.getLogger(__name__)

RESUME_FILE = "resume.pt"
BEST_FILE = "model.pt"


def rng_state(sampler: Any = None) -> dict[str, Any]:
    """Every random state of this process (NumPy's as tensors, so ``weights_only`` loads it)."""
    # the legacy global generator: what MONAI's set_determinism seeds and transforms draw from
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]  # noqa: NPY002
    keys = np.asarray(keys)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.as_tensor(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    generator = getattr(sampler, "generator", None)
    if isinstance(generator, torch.Generator):
        state["sampler"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], sampler: Any = None) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    random.setstate(_tuples(state["python"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = getattr(sampler, "generator", None)
    if "sampler" in state and isinstance(generator, torch.Generator):
        generator.set_state(state["sampler"])


def _tuples(value: Any) -> Any:
    """``random.setstate`` needs tuples where a round trip through torch.save may give lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _is_writer() -> bool:
    """Only rank 0 writes under torchrun; every rank reads."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _state_dict(module: Any) -> Any:
    return None if module is None else module.state_dict()


class ResumableCheckpoint:
    """Trainer handler: write the resumable checkpoint every epoch; resume from it at start.

    Args:
        ckpt_dir: the bundle's ``ckpt_dir`` (``model.pt`` of the best epoch lives there too).
        early_stop: the :class:`~lsmseg.engines.StagedEarlyStopping` whose state is saved with it.
        resume: ``"auto"``: continue an unfinished run found in ``ckpt_dir``, else start anew;
            True: continue (a missing or finished run stops with one line); False: start anew.
        overwrite: allow a new run to replace the ``model.pt`` of a previous run in ``ckpt_dir``.
            Without it a new run into such a folder stops with one line before any work.

    Attach it after every other epoch handler: the random states it saves must be those the
    next epoch starts from.
    """

    def __init__(
        self,
        ckpt_dir: str | Path,
        early_stop: Any = None,
        resume: bool | str = "auto",
        overwrite: bool = False,
    ) -> None:
        if resume not in (True, False, "auto"):
            fail(f"resume must be true, false or auto, got {resume!r}")
        self.ckpt_dir = Path(ckpt_dir)
        self.path = self.ckpt_dir / RESUME_FILE
        self.early_stop = early_stop
        self.overwrite = bool(overwrite)
        self.saved: dict[str, Any] | None = self._decide(resume)
        self.trainer: Any = None

    def _decide(self, resume: bool | str) -> dict[str, Any] | None:
        """The checkpoint to resume from, or None for a new run; refuse what would lose a model."""
        saved = torch.load(self.path, map_location="cpu", weights_only=True) if self.path.is_file() else None
        unfinished = saved is not None and not saved["finished"]
        if resume is True and not unfinished:
            why = "its run finished" if saved is not None else "there is none"
            fail(f"cannot resume from {self.path}: {why}; start a new run without --resume true")
        if unfinished and resume is not False:
            return saved
        previous = (self.ckpt_dir / BEST_FILE).is_file() or saved is not None
        if previous and not self.overwrite:
            fail(
                f"{self.ckpt_dir} holds the model of an earlier run: pass --overwrite true to replace it, "
                "or --ckpt_dir DIR to train into another folder"
            )
        return None

    def attach(self, trainer: Engine) -> None:
        self.trainer = trainer
        trainer.resume_hint = (  # type: ignore[attr-defined]
            "no epoch had completed, so nothing is saved: rerun the same command to start over"
        )
        trainer.add_event_handler(Events.STARTED, self._load)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._save, False)
        trainer.add_event_handler(Events.COMPLETED, self._save, True)

    def _sampler(self) -> Any:
        return getattr(self.trainer.data_loader, "sampler", None)

    def _save(self, engine: Engine, finished: bool) -> None:
        if not _is_writer():
            return
        t = self.trainer
        state = {
            "finished": finished,
            "epoch": int(t.state.epoch),
            "iteration": int(t.state.iteration),
            "stage_index": int(t.stage_index),
            "stage_start_epoch": int(t.stage_start_epoch),
            "network": t.network.state_dict(),
            "step_critics": t.step.critics.state_dict(),
            "optimizer": _state_dict(t.optimizer),
            "critic_optimizer": _state_dict(t.critic_optimizer),
            "scaler": _state_dict(t.scaler),
            "early_stop": None if self.early_stop is None else self.early_stop.state_dict(),
            "rng": rng_state(self._sampler()),
        }
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path) as tmp:
            torch.save(state, tmp)
        t.resume_hint = (
            f"epoch {t.state.epoch} is saved in {self.path}: rerun the same command "
            "(or add --resume true) to continue from there"
        )

    def _load(self, engine: Engine) -> None:
        saved, t = self.saved, self.trainer
        if saved is None:
            return
        self.saved = None  # resume once
        if saved["stage_index"] != t.stage_index:
            t._begin_stage(saved["stage_index"])
        t.stage_start_epoch = saved["stage_start_epoch"]
        t.network.load_state_dict(saved["network"])
        t.step.critics.load_state_dict(saved["step_critics"])
        t.optimizer.load_state_dict(saved["optimizer"])
        if t.critic_optimizer is not None and saved["critic_optimizer"] is not None:
            t.critic_optimizer.load_state_dict(saved["critic_optimizer"])
        if t.scaler is not None and saved["scaler"] is not None:
            t.scaler.load_state_dict(saved["scaler"])
        if self.early_stop is not None and saved["early_stop"] is not None:
            self.early_stop.load_state_dict(saved["early_stop"])
        t.state.epoch, t.state.iteration = saved["epoch"], saved["iteration"]
        set_rng_state(saved["rng"], self._sampler())
        logger.info(f"resumed from {self.path} after epoch {saved['epoch']} (stage {t.stage.name})")
