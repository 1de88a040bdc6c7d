"""CohortPipeline: batches come back in input order, a failing case is an error row, and the
cases in flight are bounded (memory flat in the cohort size)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from lsmseg.clinical import pipeline
from lsmseg.clinical.case import Prepared, Timer
from lsmseg.clinical.pipeline import MAX_WRITING, PREFETCH, CohortPipeline
from lsmseg.io import CaseSource

NOTHING: Any = None  # the fake runner needs no slice and no geometry


class FakeModel:
    def predict(self, images: np.ndarray) -> np.ndarray:  # (B, 1, S, S) -> (B, 4, S, S)
        return np.zeros((len(images), 4, *images.shape[2:]), np.float32)


class FakeRunner:
    """Counts the cases alive between ingest and their written row."""

    def __init__(self) -> None:
        self.model, self.timer = FakeModel(), Timer()
        self.alive = self.peak = 0
        self.lock = threading.Lock()

    def prepare(self, case: CaseSource, record: Any) -> Prepared:
        if case.case_id == "c007":
            raise ValueError("c007 has no PixelSpacing")
        with self.lock:
            self.alive += 1
            self.peak = max(self.peak, self.alive)
        return Prepared(
            case=case,
            ct=NOTHING,
            record=record,
            image=np.zeros((1, 8, 8), np.float32),
            geometry=NOTHING,
            seconds=0.0,
        )

    def finish(self, p: Prepared, probs: np.ndarray, network_s: float) -> dict[str, Any]:
        with self.lock:
            self.alive -= 1
        return {"case_id": p.case.case_id, "status": "ok"}

    def error_row(self, case: CaseSource, err: BaseException, seconds: float) -> dict[str, Any]:
        return {"case_id": case.case_id, "status": "error", "error": str(err)}


def test_batches_come_back_in_order_with_bounded_work_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "gate_before", lambda ct: None)
    monkeypatch.setattr(pipeline, "gate_after", lambda row, ct, extra=(): row)
    runner = FakeRunner()
    cases = [CaseSource(case_id=f"c{i:03d}", kind="dicom", source=str(i)) for i in range(60)]
    seen: list[Sequence[str]] = []
    rows: dict[str, dict[str, Any]] = {}

    def done(batch: Sequence[CaseSource], batch_rows: dict[str, dict[str, Any]]) -> None:
        seen.append([c.case_id for c in batch])
        assert set(batch_rows) == {c.case_id for c in batch}  # every row of the batch is final
        rows.update(batch_rows)

    fake: Any = runner
    CohortPipeline(fake, dict.fromkeys(c.case_id for c in cases), None, 2, 2).run(cases, done)
    assert [cid for batch in seen for cid in batch] == [c.case_id for c in cases]
    assert rows["c007"] == {"case_id": "c007", "status": "error", "error": "c007 has no PixelSpacing"}
    assert sum(r["status"] == "ok" for r in rows.values()) == 59 and runner.alive == 0
    # read ahead + being written + the batch at the network, 2 cases each: never the whole cohort
    assert 2 <= runner.peak <= (PREFETCH + MAX_WRITING + 1) * 2
