"""What a training run tells its user: the setup at start, then iterations/s and ETAs.

At start, one line names the device, the data (rows by kind, iterations per epoch) and the
method's loss terms, saying for each idle term why it is idle (a latent adversarial term with
no unpaired rows at proportion 1.0 logs 0.0 every epoch otherwise, with no word why). Then a
line every ``every`` iterations (and at the second, once a step is timed without the first
step's warm-up): iterations/s, the ETA of the epoch and of the run at ``max_epochs``
(validation time included once an epoch has completed). On a terminal an ignite progress bar
shows the epoch as well.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections import Counter
from typing import Any

from ignite.engine import Engine, Events

from lsmseg.keys import Keys, Mode
from lsmseg.methods.terms import Stage, Term

logger = logging.getLogger(__name__)

_KIND = {"rec": "reconstruction", "sup": "supervised", "lat": "latent", "adv": "latent adversarial",
         "gan": "image adversarial", "cyc": "cycle"}  # fmt: skip


def _rows_by_mode(dataset: Any) -> Counter[Mode] | None:
    """Training rows by ``Mode``; None when the rows do not say (N-domain ``present`` rows)."""
    rows = getattr(dataset, "data", None)
    if not rows or not isinstance(rows[0], dict) or Keys.MODE not in rows[0]:
        return None
    return Counter(Mode(int(r[Keys.MODE])) for r in rows)


def idle_reason(term: Term, modes: Counter[Mode], x: str, proportion: float | None) -> str | None:
    """Why ``term`` never gets a row of ``modes`` (x is the first domain), or None if it does."""
    paired, x_only, y_only = modes[Mode.PAIRED], modes[Mode.X_ONLY], modes[Mode.Y_ONLY]
    at = f" at proportion {proportion}" if proportion is not None else ""
    if term.kind in ("sup", "lat") and paired == 0:
        return f"no paired rows{at}"
    if term.kind == "adv" and x_only + y_only == 0:
        return f"no unpaired rows{at}"
    if term.kind == "adv" and min(x_only, y_only) == 0:
        return f"no {'label' if y_only == 0 else 'image'}-only rows{at}"
    if term.kind == "rec" and (paired + (x_only if term.a == x else y_only)) == 0:
        return f"no rows with {term.a}"
    return None


def describe_terms(stage: Stage, modes: Counter[Mode] | None, x: str, proportion: float | None) -> str:
    """``active terms: ...; <kind> idle (<terms>): <why>`` for the stage's terms."""
    active: list[str] = []
    idle: dict[str, list[str]] = {}  # "<kind> idle ... : <why>" -> terms, in order
    for term, weight in stage.weights.items():
        why = (
            "weight 0"
            if weight <= 0
            else (idle_reason(term, modes, x, proportion) if modes is not None else None)
        )
        if why is None:
            active.append(term.name)
        else:
            idle.setdefault(f"{_KIND.get(term.kind, term.kind)}|{why}", []).append(term.name)
    parts = [f"active terms: {', '.join(active) or 'none'}"]
    for key, names in idle.items():
        kind, why = key.split("|")
        parts.append(f"{kind} idle ({', '.join(names)}): {why}")
    return "; ".join(parts)


def _hms(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class TrainingProgress:
    """Trainer handler: the start line, then progress lines with iterations/s and ETAs.

    Args:
        every: iterations between progress lines; None: about ten lines per epoch.
        proportion: the run's proportion of paired rows, named when a term is idle for want of rows.
        bar: an ignite ProgressBar as well; None: only when stderr is a terminal.
    """

    def __init__(
        self, every: int | None = None, proportion: float | None = None, bar: bool | None = None
    ) -> None:
        self.every = every
        self.proportion = proportion
        self.bar = sys.stderr.isatty() if bar is None else bar
        self._run_t0 = self._epoch_t0 = 0.0
        self._run_i0 = 0

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.STARTED, self.started)
        trainer.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self.iteration)
        if self.bar:
            from ignite.handlers import ProgressBar

            ProgressBar(persist=False).attach(trainer)

    def started(self, trainer: Any) -> None:
        """The one line about the setup (after a resume has set the epoch)."""
        loader = trainer.data_loader
        modes = _rows_by_mode(getattr(loader, "dataset", None))
        rows = sum(modes.values()) if modes is not None else len(getattr(loader, "dataset", ()))
        kinds = (
            f" ({modes[Mode.PAIRED]} paired, {modes[Mode.X_ONLY]} x-only, {modes[Mode.Y_ONLY]} y-only)"
            if modes
            else ""
        )
        logger.info(
            f"training {trainer.method} on {trainer.state.device}: {rows} rows{kinds}, "
            f"{trainer.state.epoch_length} iterations per epoch, max_epochs {trainer.state.max_epochs}; "
            f"stage {trainer.stage.name}: "
            + describe_terms(trainer.stage, modes, trainer.network.names[0], self.proportion)
        )
        self._run_t0, self._run_i0 = time.perf_counter(), trainer.state.iteration

    def _epoch_started(self, trainer: Engine) -> None:
        self._epoch_t0 = time.perf_counter()

    def iteration(self, trainer: Any) -> None:
        """A progress line on the second iteration and every ``every`` iterations."""
        length = trainer.state.epoch_length or 1
        i = (trainer.state.iteration - 1) % length + 1  # within the epoch, from 1
        every = self.every or max(1, length // 10)
        if i % every and not (i == 2 and trainer.state.iteration - self._run_i0 == 2):
            return
        now = time.perf_counter()
        rate = i / max(now - self._epoch_t0, 1e-9)
        done = trainer.state.iteration - self._run_i0
        run_rate = done / max(now - self._run_t0, 1e-9)  # validation included after an epoch
        left = trainer.state.max_epochs * length - trainer.state.iteration
        logger.info(
            f"epoch {trainer.state.epoch}/{trainer.state.max_epochs} iteration {i}/{length}: "
            f"{rate:.2f} it/s, epoch ETA {_hms((length - i) / rate)}, "
            f"run ETA {_hms(left / run_rate)} at max_epochs {trainer.state.max_epochs} (early stopping may end it sooner)"
        )
