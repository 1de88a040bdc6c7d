"""SIGINT and SIGTERM end a training run cleanly: after the current iteration, with one line.

A signal only sets a flag and asks the engine to terminate; ignite checks that flag after the
iteration that is running, so no tensor is left half-updated and no traceback is printed. The
run then leaves through :meth:`Interrupt.exit_if_signalled`: one line saying how to resume, and
exit status 128 + signal number (130 for SIGINT, 143 for SIGTERM), as shells expect. A second
signal while the first is being honoured ends the process at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupt:
    """Context manager that turns SIGINT / SIGTERM into ``engine.terminate()`` for its duration.

    Args:
        engine: the ignite engine to stop (the trainer).
        message: builds the line printed on the way out from the signal number; it says how to
            resume (the resumable checkpoint of the last completed epoch stays on disk).

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self, engine: Any, message: Callable[[int], str]) -> None:
        self.engine = engine
        self.message = message
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # asked twice: the user does not want to wait
            os._exit(128 + signum)
        self.signum = signum
        # No COMPLETED event: the run did not finish (no best-weight restore, no final record).
        # A validation in progress completes, so the epoch it scores is checkpointed whole.
        self.engine.should_terminate = "skip_completed"

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()

    def exit_if_signalled(self) -> None:
        """After the run: print the one line and exit 128 + signal number, if a signal came."""
        if self.signum is None:
            return
        print(self.message(self.signum), file=sys.stderr, flush=True)
        raise SystemExit(128 + self.signum)
