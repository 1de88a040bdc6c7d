"""One case of a cohort run: ingest and preprocess, then (after the network) measure and write.

A case that cannot be measured becomes a results row with ``status`` "error" and a reason in the
user's terms (STYLE.md 9); nothing here stops the cohort.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lsmseg.clinical.gates import gate_after
from lsmseg.clinical.model import SegmentationModel
from lsmseg.clinical.patients import PatientRecord, patient_values
from lsmseg.clinical.results import (
    CASES_DIR,
    MASK_FILE,
    MASK_MODEL_FILE,
    OVERLAY_FILE,
    SEG_FILE,
    SR_FILE,
    STATUS_ERROR,
    STATUS_OK,
    round_measurements,
)
from lsmseg.engines.record import RecordError, read_model_record
from lsmseg.io import CaseSource, CTSlice, IngestError, load_case
from lsmseg.io.labels import LABELS_FILE, write_label_table
from lsmseg.io.sr import write_dicom_sr
from lsmseg.io.writers import write_dicom_seg, write_mask_nifti, write_overlay_png
from lsmseg.keys import Tissue
from lsmseg.readout import CutoffSet, build_readout, measure
from lsmseg.readout.labelmap import measured_mask

if TYPE_CHECKING:
    from lsmseg.transforms import SliceGeometry

logger = logging.getLogger(__name__)

MEASURE_LABEL = "lsmseg-measure"  # the ``model`` of rows re-measured from given (corrected) masks
MEASURE_CAVEAT = "research use only: measured from masks given to lsmseg measure; not for diagnosis"


class Timer:
    """Sums wall seconds per stage (``seconds[stage]``); safe to add to from worker threads (stages
    that run in parallel then sum to more than the wall time)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def __reduce__(self) -> tuple[type[Timer], tuple[()]]:
        """Pickled (to a worker process) as a new, empty timer: a lock does not travel, and the
        worker's seconds come back with its results (:mod:`lsmseg.clinical.pipeline`)."""
        return Timer, ()


@dataclass
class Ingested:
    """A case read in: its source, its slice and its patient row."""

    case: CaseSource
    ct: CTSlice
    record: PatientRecord | None


@dataclass
class Prepared(Ingested):
    """A case that reached the network: its slice, network input and bookkeeping."""

    image: np.ndarray  # (1, S, S) float32 in [0, 1]
    geometry: SliceGeometry
    seconds: float  # ingest + preprocess so far


def describe_error(err: BaseException) -> str:
    """A failed case's reason: ingest, usage and readout messages are written for the user already."""
    if isinstance(err, ValueError):  # IngestError, UsageError and readout errors among them
        return str(err)
    if isinstance(err, MemoryError):
        return "out of memory while processing this slice"
    return f"unexpected error ({type(err).__name__}: {err}); rerun with --debug for the details"


def _lsmseg_version() -> str:
    from lsmseg import __version__

    return __version__


def validation_text(model: SegmentationModel | None) -> str:
    """The model's validation figure from its record, e.g. ``validation val_mean_iou 0.731``."""
    if model is None:
        return "mask corrected by hand, then re-measured"
    try:
        training = read_model_record(model.bundle_dir / "models" / "model.pt").training
    except RecordError:
        return "validation not recorded"
    best = training.get("best_metric")
    if best is None:
        return "validation not recorded"
    n_valid = training.get("n_valid")
    return f"validation {training.get('metric', 'metric')} {float(best):.3f}" + (
        f" (n={n_valid})" if n_valid else ""
    )


class CaseRunner:
    """Turns cases into results rows with one model and one set of readout settings.

    Args:
        out_dir: the run's output folder; case files go to ``cases/<case_id>/``.
        model: the loaded bundle; None when masks come from elsewhere (``lsmseg measure``).
        cutoff_sets: cut-off sets to judge sarcopenia by.
        vat_hu: visceral fat HU range; refine: apply the Alberta HU ranges.
        timer: where stage times are added.
    """

    def __init__(
        self,
        out_dir: Path,
        model: SegmentationModel | None,
        cutoff_sets: Sequence[CutoffSet],
        vat_hu: tuple[float, float],
        refine: bool,
        timer: Timer,
    ) -> None:
        self.out_dir = out_dir
        self._model = model
        self.cutoff_sets = list(cutoff_sets)
        self.vat_hu = vat_hu
        self.refine = refine
        self.timer = timer
        self.model_label = model.label if model is not None else MEASURE_LABEL
        self.validation = validation_text(model)
        self.caveat = model.caveat if model is not None else MEASURE_CAVEAT

    @property
    def model(self) -> SegmentationModel:
        """The bundle that predicts the masks (ValueError when masks are given instead)."""
        if self._model is None:
            raise ValueError("this run measures given masks: it has no model to predict with")
        return self._model

    def base_row(self, case: CaseSource) -> dict[str, Any]:
        return {"case_id": case.case_id, "status": STATUS_OK, "error": None, "source": case.source}

    def error_row(self, case: CaseSource, err: BaseException, seconds: float) -> dict[str, Any]:
        """The row of a failed case: status error and the reason (traceback in the debug log)."""
        logger.debug("case %s failed", case.case_id, exc_info=err)
        row = self.base_row(case)
        row.update(
            status=STATUS_ERROR,
            error=describe_error(err),
            runtime_s=round(seconds, 3),
            model=self.model_label,
        )
        return row

    def ingest(self, case: CaseSource, record: PatientRecord | None) -> CTSlice:
        """Ingest one case (with the quality gate), after the patient row's own checks."""
        start = time.perf_counter()
        if record is not None and record.problems:
            raise IngestError("; ".join(record.problems))
        ct = load_case(case, record.l3_slice if record else None)
        self.timer.add("ingest", time.perf_counter() - start)
        return ct

    def prepare(self, case: CaseSource, record: PatientRecord | None) -> Prepared:
        """Ingest (with the quality gate) and preprocess one case."""
        start = time.perf_counter()
        ct = self.ingest(case, record)
        ingested = time.perf_counter()
        image, geometry = self.model.preprocess(ct.hu)
        done = time.perf_counter()
        self.timer.add("preprocess", done - ingested)
        return Prepared(case=case, ct=ct, record=record, image=image, geometry=geometry, seconds=done - start)

    def finish(self, p: Prepared, probs: np.ndarray, network_s: float) -> dict[str, Any]:
        """(C, S, S) probabilities -> native mask -> readout -> case files -> results row."""
        start = time.perf_counter()
        if not np.all(np.isfinite(probs)):
            raise ValueError(
                "the network output has NaN values: the bundle's weights are broken (retrain or restore model.pt)"
            )
        mask = self.model.transform.inverse_mask(probs, p.geometry)  # (H, W) uint8 on the native grid
        self.timer.add("readout", time.perf_counter() - start)
        return self.finish_mask(p, mask, p.seconds + network_s + time.perf_counter() - start)

    def finish_mask(self, p: Ingested, mask: np.ndarray, seconds: float) -> dict[str, Any]:
        """(H, W) compartment mask on the native grid -> readout -> case files -> results row.

        ``seconds``: time spent on the case before this call (ingest, network).
        """
        start = time.perf_counter()
        row, notes = self._measure(p, mask)
        gate_after(row, p.ct)  # the quality column before the overlay, which shows it
        measured = time.perf_counter()
        self.timer.add("readout", measured - start)
        files, error = self._write_files(p, mask, row)
        written = time.perf_counter()
        self.timer.add("writers", written - measured)
        row.update(files)
        if error is not None:
            row.update(status=STATUS_ERROR, error=error, quality=None)
        row["notes"] = "; ".join(notes) or None
        row.update(runtime_s=round(seconds + written - start, 3), model=self.model_label)
        return row

    def _measure(self, p: Ingested, mask: np.ndarray) -> tuple[dict[str, Any], list[str]]:
        """The results row of a measured case (areas, HU statistics, SMI, verdicts; rounded to
        what the method supports) and notes on the patient values."""
        row = self.base_row(p.case)
        if p.case.n_slices > 1 and p.record is not None:
            row["l3_slice"] = p.record.l3_slice
        composition = measure(mask, p.ct.hu, p.ct.spacing_mm, refine=self.refine, vat_hu=self.vat_hu)
        patient, notes = patient_values(p.ct, p.record)
        row.update(
            round_measurements(build_readout(composition, cutoff_sets=self.cutoff_sets, **patient).to_row())
        )
        return row, notes

    def _write_files(
        self, p: Ingested, mask: np.ndarray, row: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The case's files (:data:`CASE_FILES`); their paths relative to the output folder, and
        the error the row gets (None when all is well).

        mask.nii.gz and seg.dcm hold the measured pixels (HU-refined compartments with IMAT,
        :func:`measured_mask`), mask_model.nii.gz the raw model regions, labels.json says which
        is which; seg.dcm and sr.dcm only for DICOM input with muscle found.
        """
        folder = self.out_dir / CASES_DIR / p.case.case_id
        files: dict[str, str | None] = dict.fromkeys(
            ("mask_file", "mask_model_file", "overlay_file", "seg_file", "sr_file")
        )
        measured = measured_mask(mask, p.ct.hu, refine=self.refine, vat_hu=self.vat_hu)
        what = "measured L3 compartments" + (" after HU ranges" if self.refine else " (raw, no HU ranges)")
        write_mask_nifti(measured, p.ct, folder / MASK_FILE, description=f"lsmseg {what}, see labels.json")
        write_mask_nifti(
            mask, p.ct, folder / MASK_MODEL_FILE, description="lsmseg raw model regions, see labels.json"
        )
        write_label_table(folder / LABELS_FILE, self.refine, self.vat_hu if self.refine else None)
        files["mask_file"] = self._relative(folder / MASK_FILE)
        files["mask_model_file"] = self._relative(folder / MASK_MODEL_FILE)
        shown = {**row, "model": self.model_label, "model_validation": self.validation, "caveat": self.caveat}
        write_overlay_png(p.ct, measured, folder / OVERLAY_FILE, measurements=shown)
        files["overlay_file"] = self._relative(folder / OVERLAY_FILE)
        if not np.any(mask == Tissue.MUSCLE):
            return files, (
                "no skeletal muscle on this slice: is it an axial L3 slice of the "
                f"abdomen? (see {files['overlay_file']})"
            )
        if p.ct.dicom is None:
            return files, None
        return self._write_dicom(p, measured, row, folder, files)

    def _write_dicom(
        self, p: Ingested, measured: np.ndarray, row: dict[str, Any], folder: Path, files: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """seg.dcm (the measured mask) and sr.dcm (the row, referencing the image and the SEG)."""
        name = self._model.name if self._model is not None else MEASURE_LABEL
        version = self._model.version if self._model is not None else _lsmseg_version()
        try:
            seg = write_dicom_seg(
                measured,
                p.ct,
                folder / SEG_FILE,
                algorithm_name=name,
                algorithm_version=version,
                software_version=_lsmseg_version(),
                refined=self.refine,
                vat_hu=self.vat_hu if self.refine else None,
                algorithm_type="AUTOMATIC" if self._model is not None else "SEMIAUTOMATIC",
            )
            files["seg_file"] = self._relative(folder / SEG_FILE)
            write_dicom_sr(
                row, p.ct, folder / SR_FILE, seg=seg, algorithm_name=name, algorithm_version=version
            )
            files["sr_file"] = self._relative(folder / SR_FILE)
        except Exception as err:  # highdicom rejects some source headers; the numbers stand
            logger.debug("case %s: DICOM SEG/SR failed", p.case.case_id, exc_info=err)
            return files, f"measured, but the DICOM SEG or SR could not be written: {err}"
        return files, None

    def for_writer_process(self) -> CaseRunner:
        """A copy to pickle to a writer process: the readout settings and the model's transform
        and names, without the network (its weights stay with the process that runs it)."""
        worker = copy.copy(self)
        if self._model is not None:
            worker._model = replace(self._model, network=None)
        worker.timer = Timer()
        return worker

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()
