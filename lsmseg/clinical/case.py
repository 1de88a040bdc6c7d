"""One case of a cohort run: ingest and preprocess, then (after the network) measure and write.

A case that cannot be measured becomes a results row with ``status`` "error" and a reason in the
user's terms (STYLE.md 9); nothing here stops the cohort.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lsmseg.clinical.model import SegmentationModel
from lsmseg.clinical.patients import PatientRecord, patient_values
from lsmseg.clinical.results import CASES_DIR, MASK_FILE, OVERLAY_FILE, SEG_FILE, STATUS_ERROR, STATUS_OK
from lsmseg.io import CaseSource, CTSlice, IngestError, load_case
from lsmseg.io.writers import write_dicom_seg, write_mask_nifti, write_overlay_png
from lsmseg.keys import Tissue
from lsmseg.readout import CutoffSet, build_readout, measure, tissue_pixels

if TYPE_CHECKING:
    from lsmseg.transforms import SliceGeometry

logger = logging.getLogger(__name__)


class Timer:
    """Sums wall seconds per stage (``seconds[stage]``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@dataclass
class Prepared:
    """A case that reached the network: its slice, network input and bookkeeping."""

    case: CaseSource
    ct: CTSlice
    image: np.ndarray  # (1, S, S) float32 in [0, 1]
    geometry: SliceGeometry
    record: PatientRecord | None
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


class CaseRunner:
    """Turns cases into results rows with one model and one set of readout settings.

    Args:
        out_dir: the run's output folder; case files go to ``cases/<case_id>/``.
        model: the loaded bundle.
        cutoff_sets: cut-off sets to judge sarcopenia by.
        vat_hu: visceral fat HU range; refine: apply the Alberta HU ranges.
        timer: where stage times are added.
    """

    def __init__(
        self,
        out_dir: Path,
        model: SegmentationModel,
        cutoff_sets: Sequence[CutoffSet],
        vat_hu: tuple[float, float],
        refine: bool,
        timer: Timer,
    ) -> None:
        self.out_dir = out_dir
        self.model = model
        self.cutoff_sets = list(cutoff_sets)
        self.vat_hu = vat_hu
        self.refine = refine
        self.timer = timer

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
            model=self.model.label,
        )
        return row

    def prepare(self, case: CaseSource, record: PatientRecord | None) -> Prepared:
        """Ingest (with the quality gate) and preprocess one case."""
        start = time.perf_counter()
        if record is not None and record.problems:
            raise IngestError("; ".join(record.problems))
        ct = load_case(case, record.l3_slice if record else None)
        ingested = time.perf_counter()
        self.timer.add("ingest", ingested - start)
        image, geometry = self.model.preprocess(ct.hu)
        done = time.perf_counter()
        self.timer.add("preprocess", done - ingested)
        return Prepared(case, ct, image, geometry, record, done - start)

    def finish(self, p: Prepared, probs: np.ndarray, network_s: float) -> dict[str, Any]:
        """(C, S, S) probabilities -> native mask -> readout -> case files -> results row."""
        start = time.perf_counter()
        if not np.all(np.isfinite(probs)):
            raise ValueError(
                "the network output has NaN values: the bundle's weights are broken (retrain or restore model.pt)"
            )
        mask = self.model.transform.inverse_mask(probs, p.geometry)  # (H, W) uint8 on the native grid
        row, notes = self._measure(p, mask)
        measured = time.perf_counter()
        self.timer.add("readout", measured - start)
        files, error = self._write_files(p, mask, row)
        written = time.perf_counter()
        self.timer.add("writers", written - measured)
        row.update(files)
        if error is not None:
            row.update(status=STATUS_ERROR, error=error)
        row["notes"] = "; ".join(notes) or None
        row.update(runtime_s=round(p.seconds + network_s + written - start, 3), model=self.model.label)
        return row

    def _measure(self, p: Prepared, mask: np.ndarray) -> tuple[dict[str, Any], list[str]]:
        """The results row of a measured case (areas, HU statistics, SMI, verdicts) and notes
        on the patient values."""
        row = self.base_row(p.case)
        if p.case.n_slices > 1 and p.record is not None:
            row["l3_slice"] = p.record.l3_slice
        composition = measure(mask, p.ct.hu, p.ct.spacing_mm, refine=self.refine, vat_hu=self.vat_hu)
        patient, notes = patient_values(p.ct, p.record)
        row.update(build_readout(composition, cutoff_sets=self.cutoff_sets, **patient).to_row())
        return row, notes

    def _write_files(
        self, p: Prepared, mask: np.ndarray, row: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """mask.nii.gz, overlay.png and (DICOM input with muscle found) seg.dcm; their paths
        relative to the output folder, and the error the row gets (None when all is well)."""
        folder = self.out_dir / CASES_DIR / p.case.case_id
        files: dict[str, str | None] = {"mask_file": None, "overlay_file": None, "seg_file": None}
        write_mask_nifti(mask, p.ct, folder / MASK_FILE)
        files["mask_file"] = self._relative(folder / MASK_FILE)
        # The picture shows what was measured: the HU-refined tissues, IMAT on top of muscle.
        px = tissue_pixels(mask, p.ct.hu, refine=self.refine, vat_hu=self.vat_hu)
        shown = np.zeros_like(mask)
        shown[px.sat] = Tissue.SAT
        shown[px.vat] = Tissue.VAT
        shown[px.muscle] = Tissue.MUSCLE
        write_overlay_png(p.ct, shown, folder / OVERLAY_FILE, measurements=row, imat=px.imat)
        files["overlay_file"] = self._relative(folder / OVERLAY_FILE)
        if not np.any(mask == Tissue.MUSCLE):
            return files, (
                "the model found no skeletal muscle on this slice: is it an axial L3 slice of the "
                f"abdomen? (see {files['overlay_file']})"
            )
        if p.ct.dicom is None:
            return files, None
        try:
            write_dicom_seg(
                mask,
                p.ct,
                folder / SEG_FILE,
                algorithm_name=self.model.name,
                algorithm_version=self.model.version,
                software_version=_lsmseg_version(),
            )
        except Exception as err:  # highdicom rejects some source headers; the numbers stand
            logger.debug("case %s: DICOM SEG failed", p.case.case_id, exc_info=err)
            return files, f"measured, but the DICOM SEG could not be written: {err}"
        files["seg_file"] = self._relative(folder / SEG_FILE)
        return files, None

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()
