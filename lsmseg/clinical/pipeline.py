"""segment's cohort loop as a pipeline: ingest workers -> the network on batches -> writer workers.

    batch i+2, i+1   ingest pool: read the DICOM / NIfTI slice, quality gate, preprocess
    batch i          main thread: one network call (+ the OOD score) for the batch
    batch i-1, ...   writer pool: native mask, readout, mask.nii.gz / overlay.png / seg.dcm /
                     sr.dcm of each case, committed together per case (:func:`batched_commit`)

The stages overlap: while the network runs, threads read the next slices and writers write the
last ones. The writers' work is mostly Python (highdicom's SR and SEG, the overlay), which holds
the GIL: threads overlap only its I/O and native parts. So on a cohort of
:data:`PROCESS_MIN_CASES` cases or more the writers are processes (:class:`Writers`,
``forkserver``: a fresh process that imports lsmseg once, safe beside the network's OpenMP
threads), each with a copy of the readout settings and the model's transform, never its
network. Work in flight is bounded (:data:`PREFETCH` batches read ahead, :data:`MAX_WRITING`
batches being written), so memory is flat in the cohort size: only the results rows, a few KB
each, are kept for the whole run.
A case that fails at any stage becomes an error row; nothing here stops the cohort.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
from monai.utils import TraceKeys

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
# Starting a writer process (a fork of the forkserver, which imports lsmseg and torch once, about
# 3 CPU s) costs about as much as writing a handful of cases; below this many cases, threads.
PROCESS_MIN_CASES = 16
# What the writers import lazily on their first case (about 2 CPU s per process otherwise):
# imported once in the forkserver, so each writer process forks with them loaded.
WRITER_PRELOAD = ("highdicom", "matplotlib", "PIL.ImageDraw", "PIL.ImageFont", "PIL.PngImagePlugin")
Rows = dict[str, dict[str, Any]]
Finished = tuple[dict[str, Any], dict[str, float]]  # a case's row, and its stage seconds


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


_PROCESS_RUNNER: CaseRunner | None = None  # a writer process's copy (set by its initializer)


def start_writer_process(runner: CaseRunner) -> None:
    """Writer-process initializer: keep the runner copy, one OpenMP thread (as the threads)."""
    global _PROCESS_RUNNER
    one_torch_thread()
    _PROCESS_RUNNER = runner


def finish_in_process(
    p: Prepared, output: np.ndarray | Exception, network_s: float, ood: tuple[dict[str, Any], list[str]]
) -> Finished:
    """:func:`finish_case` in a writer process; the row and the stage seconds it took there.

    MONAI's inverse matches each recorded crop and resize to the transform object that applied
    it by its ``id``; the process's copy of the chain has other ids, so the case's record is
    marked ``TraceKeys.NONE`` (match by position, which MONAI allows for copies across
    processes; the copy is the same chain)."""
    runner = _PROCESS_RUNNER
    if runner is None:
        raise RuntimeError("finish_in_process runs in a writer process started by Writers")
    runner.timer.seconds.clear()
    cpu = time.process_time()
    _unpin(p.geometry.operations)
    row = finish_case(runner, p, output, network_s, ood)
    runner.timer.add("writer_cpu", time.process_time() - cpu)
    return row, dict(runner.timer.seconds)


def _unpin(record: Any) -> None:
    """Set every transform id in a MONAI ``applied_operations`` record to ``TraceKeys.NONE``."""
    if isinstance(record, dict):
        if TraceKeys.ID in record:
            record[TraceKeys.ID] = TraceKeys.NONE
        for value in record.values():
            _unpin(value)
    elif isinstance(record, list | tuple):
        for value in record:
            _unpin(value)


def finish_in_thread(
    runner: CaseRunner,
    p: Prepared,
    output: np.ndarray | Exception,
    network_s: float,
    ood: tuple[dict[str, Any], list[str]],
) -> Finished:
    """:func:`finish_case` in a writer thread (its stage seconds go to the shared timer)."""
    return finish_case(runner, p, output, network_s, ood), {}


class Writers:
    """The writer pool: ``workers`` threads sharing the runner, or processes each holding a copy
    (:meth:`CaseRunner.for_writer_process`). A writer process that dies (killed for memory, a
    crash in a native library) breaks the pool: the cases it held become error rows and a new
    pool takes the next cases, so the cohort goes on."""

    def __init__(self, runner: CaseRunner, workers: int, processes: bool) -> None:
        self.runner, self.workers, self.processes = runner, workers, processes
        self.pool = self._start()

    def _start(self) -> Executor:
        if not self.processes:
            return ThreadPoolExecutor(self.workers, "lsmseg-write", initializer=one_torch_thread)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, *WRITER_PRELOAD])  # before the server's first start
        return ProcessPoolExecutor(
            self.workers,
            context,
            initializer=start_writer_process,
            initargs=(self.runner.for_writer_process(),),
        )

    def submit(
        self,
        p: Prepared,
        output: np.ndarray | Exception,
        network_s: float,
        ood: tuple[dict[str, Any], list[str]],
    ) -> Future[Finished]:
        if not self.processes:
            return self.pool.submit(finish_in_thread, self.runner, p, output, network_s, ood)
        try:
            return self.pool.submit(finish_in_process, p, output, network_s, ood)
        except BrokenProcessPool:
            logger.warning("a writer process died; starting new ones")
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._start()
            return self.pool.submit(finish_in_process, p, output, network_s, ood)

    def row(self, task: Future[Finished], p: Prepared, network_s: float) -> dict[str, Any]:
        """The case's row (an error row when its writer died), its stage seconds added."""
        try:
            row, seconds = task.result()
        except Exception as err:  # finish_case turns the case's own errors into rows already
            return self.runner.error_row(p.case, err, p.seconds + network_s)
        for stage, s in seconds.items():
            self.runner.timer.add(stage, s)
        return row

    def shutdown(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class CohortPipeline:
    """Runs cases through ingest workers, the network and writer workers (module docstring).

    Args:
        runner: the model and readout settings; records: each case's patient row by case id.
        ood: the bundle's OOD reference (None: no ``ood_*`` columns).
        batch_size: slices per network call; workers: threads reading slices, and writers.
        processes: writers are processes (else threads), see :data:`PROCESS_MIN_CASES`.
    """

    def __init__(
        self,
        runner: CaseRunner,
        records: Mapping[str, PatientRecord | None],
        ood: OODReference | None,
        batch_size: int,
        workers: int,
        processes: bool = False,
    ) -> None:
        self.runner, self.records, self.ood = runner, records, ood
        self.batch_size, self.workers, self.processes = batch_size, workers, processes

    def run(self, cases: Sequence[CaseSource], done: Callable[[Sequence[CaseSource], Rows], None]) -> None:
        """Process ``cases``; ``done(batch, rows)`` is called in the main thread, batch by batch
        in input order, once every row of the batch is final (its files committed)."""
        ingest = ThreadPoolExecutor(self.workers, "lsmseg-ingest", initializer=one_torch_thread)
        write = Writers(self.runner, self.workers, self.processes)
        ahead: deque[tuple[Sequence[CaseSource], list[Future[Any]]]] = deque()
        writing: deque[tuple[Sequence[CaseSource], Rows, list[Callable[[], dict[str, Any]]]]] = deque()
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
                        row = task()
                        rows[str(row["case_id"])] = row
                    done(batch, rows)
        finally:
            ingest.shutdown(cancel_futures=True)
            write.shutdown()

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
        self, writers: Writers, ready: Sequence[Prepared | dict[str, Any]]
    ) -> tuple[Rows, list[Callable[[], dict[str, Any]]]]:
        """One network call for the prepared cases of a batch; their finishing goes to ``writers``.
        Returns the error rows known already and, per finishing case, a call that waits for its row."""
        rows: Rows = {str(r["case_id"]): r for r in ready if isinstance(r, dict)}
        prepared = [p for p in ready if isinstance(p, Prepared)]
        if not prepared:
            return rows, []
        start = time.perf_counter()
        outputs = predict_batch(self.runner.model, prepared)
        network_s = (time.perf_counter() - start) / len(prepared)
        self.runner.timer.add("network", network_s * len(prepared))
        scored = ood_batch(self.runner.model, self.ood, prepared, outputs)
        tasks: list[Callable[[], dict[str, Any]]] = [
            functools.partial(writers.row, writers.submit(p, out, network_s, ood), p, network_s)
            for p, out, ood in zip(prepared, outputs, scored, strict=True)
        ]
        return rows, tasks
