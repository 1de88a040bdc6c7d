"""CohortPipeline: batches come back in input order, a failing case is an error row, the cases
in flight are bounded (memory flat in the cohort size); writer processes write what threads do,
and one that dies costs its cases, not the cohort."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from lsmseg.clinical import cohort as cohort_module
from lsmseg.clinical import pipeline, segment_cohort
from lsmseg.clinical.case import CaseRunner, Prepared, Timer
from lsmseg.clinical.pipeline import MAX_WRITING, PREFETCH, CohortPipeline
from lsmseg.data.phantom import write_cohort
from lsmseg.io import CaseSource
from tests.helpers.clinical import nifti, read_csv, tiny_bundle

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


# --- writer processes (the real runner on a phantom cohort) -----------------------------------------
class DyingRunner(CaseRunner):
    """A runner whose writer process dies (as if killed for memory) on the case ``phantom_0001``."""

    def finish_mask(self, p: Any, mask: np.ndarray, seconds: float) -> dict[str, Any]:
        if p.case.case_id == "phantom_0001" and multiprocessing.parent_process() is not None:
            os._exit(1)
        return super().finish_mask(p, mask, seconds)


def segment(cohort: Path, out: Path, processes: bool, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    monkeypatch.setattr(cohort_module, "PROCESS_MIN_CASES", 1 if processes else 10**9)
    return segment_cohort(
        [cohort / "images"], out, tiny_bundle(), patients_csv=cohort / "patients.csv", device="cpu",
        progress=False, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    write_cohort(folder, 5, fmt="dicom", seed=3, size=256)
    return folder


@pytest.mark.slow  # starts the forkserver and its writer processes (about 10 s on 2 loaded cores)
def test_writer_processes_write_the_same_files_and_rows_as_threads(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = segment(cohort, tmp_path / "threads", False, monkeypatch, batch_size=2)
    processes = segment(cohort, tmp_path / "processes", True, monkeypatch, batch_size=2)
    assert threads.exit_status == processes.exit_status == 0
    assert processes.timings_s["writers"] > 0 and processes.timings_s["readout"] > 0  # sent back
    one, two = (read_csv(r.results_csv) for r in (threads, processes))
    assert [{**r, "runtime_s": None} for r in one] == [{**r, "runtime_s": None} for r in two]
    for case_id in (r["case_id"] for r in one):
        a, b = (r.out_dir / "cases" / case_id for r in (threads, processes))
        assert {p.name for p in a.iterdir()} == {p.name for p in b.iterdir()}
        for name in ("mask.nii.gz", "mask_model.nii.gz"):
            assert np.array_equal(nifti(a / name).get_fdata(), nifti(b / name).get_fdata())
        assert np.array_equal(
            np.asarray(Image.open(a / "overlay.png")), np.asarray(Image.open(b / "overlay.png"))
        )
        assert np.array_equal(
            pydicom.dcmread(a / "seg.dcm").pixel_array, pydicom.dcmread(b / "seg.dcm").pixel_array
        )
        assert (a / "labels.json").read_text() == (b / "labels.json").read_text()
        sr_a, sr_b = (pydicom.dcmread(f / "sr.dcm") for f in (a, b))
        assert len(sr_a.ContentSequence) == len(sr_b.ContentSequence)


@pytest.mark.slow  # starts writer processes twice
def test_a_writer_process_that_dies_costs_its_cases_not_the_cohort(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cohort_module, "CaseRunner", DyingRunner)
    report = segment(cohort, tmp_path / "out", True, monkeypatch, batch_size=1, workers=1)
    rows = {r["case_id"]: r for r in report.rows}
    assert list(rows) == [f"phantom_000{i}" for i in range(1, 6)]  # every case has its row
    assert rows["phantom_0001"]["status"] == "error" and "BrokenProcessPool" in rows["phantom_0001"]["error"]
    # cases sent after the pool broke go to new writer processes
    assert rows["phantom_0005"]["status"] == "ok", rows["phantom_0005"]["error"]
