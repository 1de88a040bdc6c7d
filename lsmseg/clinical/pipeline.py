"""segment's cohort loop as a pipeline: ingest workers -> the network on batches -> writer workers.

    batch i+2, i+1   ingest pool: read the DICOM / NIfTI slice, quality gate, preprocess
    batch i          main thread: one network call (+ the OOD score) for the batch
    batch i-1, ...   writer pool: native mask, readout, mask.nii.gz / overlay.png / seg.dcm /
                     sr.dcm of each case, committed together per case (:func:`batched_commit`)

The stages overlap: while the network runs, threads read the next slices and write the last
ones (zlib, PNG encoding, file I/O and fsync release the GIL). Work in flight is bounded
(:data:`PREFETCH` batches read ahead, :data:`MAX_WRITING` batches being written), so memory is
flat in the cohort size: only the results rows, a few KB each, are kept for the whole run.
A case that fails at any stage becomes an error row; nothing here stops the cohort.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from lsmseg.clinical.case import CaseRunner, Prepared
from lsmseg.clinical.gates import gate_after, gate_before
from lsmseg.clinical.model import SegmentationModel
from lsmseg.clinical.ood import batch_scores, ood_columns
from lsmseg.clinical.patients import PatientRecord
from lsmseg.engines.ood import OODReference
from lsmseg.io import CaseSource
from lsmseg.io.atomic import batched_commit

logger = logging.getLogger(__name__)

PREFETCH = 2  # batches read ahead of the network
MAX_WRITING = 2  # batches whose case files may still be in the writer pool
Rows = dict[str, dict[str, Any]]


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of ``size`` (the last may be shorter)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_batch(model: SegmentationModel, prepared: Sequence[Prepared]) -> list[np.ndarray | Exception]:
    """(C, S, S) probabilities per case from one network call; should it fail (e.g. out of GPU
    memory), one call per case, so only the cases that cannot be run fail (their error instead)."""
    try:
        return list(model.predict(np.stack([p.image for p in prepared])))  # (B, C, S, S)
    except Exception as err:
        if len(prepared) == 1:
            return [err]
        logger.debug("batch of %d failed in the network; retrying case by case", len(prepared), exc_info=err)
    outputs: list[np.ndarray | Exception] = []
    for p in prepared:
        try:
            outputs.append(model.predict(p.image[None])[0])
        except Exception as err:
            outputs.append(err)
    return outputs


def ood_batch(
    model: SegmentationModel,
    reference: OODReference | None,
    prepared: Sequence[Prepared],
    outputs: Sequence[np.ndarray | Exception],
) -> list[tuple[dict[str, Any], list[str]]]:
    """Per prepared case: its ``ood_score`` / ``ood_percentile`` columns and OOD warning
    (:mod:`lsmseg.clinical.ood`); empty without a reference or a network output."""
    empty: list[tuple[dict[str, Any], list[str]]] = [({}, []) for _ in prepared]
    done = [i for i, o in enumerate(outputs) if isinstance(o, np.ndarray)]
    if reference is None or not done:
        return empty
    try:
        images = np.stack([prepared[i].image for i in done])  # (B', 1, S, S)
        probs = [o for o in outputs if isinstance(o, np.ndarray)]  # (C, S, S) each, same order
        scores = batch_scores(model, reference, images, probs)
    except Exception as err:  # the score is a caveat on top of the measurement, never a reason to lose it
        logger.warning("out-of-distribution score failed for this batch: %s", err, exc_info=err)
        return empty
    for i, score in zip(done, scores, strict=True):
        empty[i] = ood_columns(reference, score)
    return empty


def prepare_case(
    runner: CaseRunner, case: CaseSource, record: PatientRecord | None
) -> Prepared | dict[str, Any]:
    """Ingest, gate and preprocess one case (a worker task): its network input, or its error row."""
    start = time.perf_counter()
    try:
        prepared = runner.prepare(case, record)
        gate_before(prepared.ct)
        return prepared
    except Exception as err:
        return runner.error_row(case, err, time.perf_counter() - start)


def finish_case(
    runner: CaseRunner,
    p: Prepared,
    output: np.ndarray | Exception,
    network_s: float,
    ood: tuple[dict[str, Any], list[str]],
) -> dict[str, Any]:
    """Readout and case files of one case (a worker task), its files committed together; its row."""
    start = time.perf_counter()
    try:
        if isinstance(output, Exception):
            return runner.error_row(p.case, output, p.seconds + network_s)
        with batched_commit():
            row = {**runner.finish(p, output, network_s), **ood[0]}
        return gate_after(row, p.ct, extra=ood[1])
    except Exception as err:
        return runner.error_row(p.case, err, p.seconds + network_s + time.perf_counter() - start)


def one_torch_thread() -> None:
    """Worker-thread initializer: the small tensor ops of ingest and readout (resize, inverse
    mask) get one OpenMP thread, so the pools do not oversubscribe the cores the network's own
    threads use (OpenMP's thread count is a per-thread setting; the main thread keeps its own)."""
    import torch

    torch.set_num_threads(1)


class CohortPipeline:
    """Runs cases through ingest workers, the network and writer workers (module docstring).

    Args:
        runner: the model and readout settings; records: each case's patient row by case id.
        ood: the bundle's OOD reference (None: no ``ood_*`` columns).
        batch_size: slices per network call; workers: threads in each of the two pools.
    """

    def __init__(
        self,
        runner: CaseRunner,
        records: Mapping[str, PatientRecord | None],
        ood: OODReference | None,
        batch_size: int,
        workers: int,
    ) -> None:
        self.runner, self.records, self.ood = runner, records, ood
        self.batch_size, self.workers = batch_size, workers

    def run(self, cases: Sequence[CaseSource], done: Callable[[Sequence[CaseSource], Rows], None]) -> None:
        """Process ``cases``; ``done(batch, rows)`` is called in the main thread, batch by batch
        in input order, once every row of the batch is final (its files committed)."""
        ingest = ThreadPoolExecutor(self.workers, "lsmseg-ingest", initializer=one_torch_thread)
        write = ThreadPoolExecutor(self.workers, "lsmseg-write", initializer=one_torch_thread)
        ahead: deque[tuple[Sequence[CaseSource], list[Future[Any]]]] = deque()
        writing: deque[tuple[Sequence[CaseSource], Rows, list[Future[dict[str, Any]]]]] = deque()
        todo = batches(cases, self.batch_size)
        try:
            for _ in range(PREFETCH):
                self._read_ahead(ingest, todo, ahead)
            while ahead:
                batch, futures = ahead.popleft()
                self._read_ahead(ingest, todo, ahead)
                rows, tasks = self._network(write, [f.result() for f in futures])
                writing.append((batch, rows, tasks))
                while len(writing) > MAX_WRITING or (writing and not ahead):
                    batch, rows, tasks = writing.popleft()
                    for task in tasks:
                        row = task.result()
                        rows[str(row["case_id"])] = row
                    done(batch, rows)
        finally:
            ingest.shutdown(cancel_futures=True)
            write.shutdown(cancel_futures=True)

    def _read_ahead(
        self,
        pool: ThreadPoolExecutor,
        todo: Iterator[Sequence[CaseSource]],
        ahead: deque[tuple[Sequence[CaseSource], list[Future[Any]]]],
    ) -> None:
        batch = next(todo, None)
        if batch is not None:
            tasks = [pool.submit(prepare_case, self.runner, c, self.records[c.case_id]) for c in batch]
            ahead.append((batch, tasks))

    def _network(
        self, pool: ThreadPoolExecutor, ready: Sequence[Prepared | dict[str, Any]]
    ) -> tuple[Rows, list[Future[dict[str, Any]]]]:
        """One network call for the prepared cases of a batch; their finishing goes to ``pool``.
        Returns the error rows known already and the finishing tasks."""
        rows: Rows = {str(r["case_id"]): r for r in ready if isinstance(r, dict)}
        prepared = [p for p in ready if isinstance(p, Prepared)]
        if not prepared:
            return rows, []
        start = time.perf_counter()
        outputs = predict_batch(self.runner.model, prepared)
        network_s = (time.perf_counter() - start) / len(prepared)
        self.runner.timer.add("network", network_s * len(prepared))
        scored = ood_batch(self.runner.model, self.ood, prepared, outputs)
        tasks = [
            pool.submit(finish_case, self.runner, p, out, network_s, ood)
            for p, out, ood in zip(prepared, outputs, scored, strict=True)
        ]
        return rows, tasks
