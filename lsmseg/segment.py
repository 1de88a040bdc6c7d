"""The clinical path: L3 CT slices in, body composition, masks and reports out.

:func:`segment_cohort` is the library behind ``lsmseg segment`` (DESIGN.md "Command line"):

    files -> discover_cases -> load_case (CTSlice, quality gate) -> CropWindowResize ->
    network of a bundle (loaded once, slices batched) -> inverse_mask -> measure / build_readout ->
    cases/<case_id>/{mask.nii.gz, overlay.png, seg.dcm} + results.csv / results.json

A case that cannot be measured becomes a row with ``status`` "error" and a reason in the user's
terms; it never stops the cohort (STYLE.md 9). Problems with the run itself (no inputs, a bundle
without weights, an unknown cut-off set) raise :class:`SegmentError` before any work starts.
Results are rewritten after every batch, every file atomically, so an interrupted run keeps what
it finished and ``resume=True`` completes the rest.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lsmseg.keys import ADIPOSE_HU, MUSCLE_HU, TISSUE_NAMES, VAT_HU_DEFAULT, Tissue

if TYPE_CHECKING:
    import torch

    from lsmseg.io import CaseSource, CTSlice
    from lsmseg.readout import CutoffSet
    from lsmseg.transforms import CropWindowResize, SliceGeometry

logger = logging.getLogger(__name__)

DEFAULT_BUNDLE = "lsm_sss"
DEFAULT_CUTOFFS: tuple[str, ...] = ("prado2008", "martin2013", "derstine2018")
STATUS_OK = "ok"
STATUS_ERROR = "error"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
CASES_DIR = "cases"
MASK_FILE = "mask.nii.gz"
OVERLAY_FILE = "overlay.png"
SEG_FILE = "seg.dcm"
# Matrix sizes of diagnostic axial CT (usually 512); anything outside is not a CT slice as exported
# by a scanner (a thumbnail, a secondary capture, a stitched image).
MATRIX_PX_RANGE = (128, 2048)
# A DICOM PatientSize above this is not in metres (centimetres typed into the scanner).
MAX_HEIGHT_M = 3.0
MAX_WEIGHT_KG = 500.0
# Settings that must match for --resume to reuse earlier rows.
_RESUME_KEYS = ("weights_sha256", "image_size", "hu_range", "refine", "hu_ranges", "cutoff_sets")


class SegmentError(ValueError):
    """A problem with the run as asked (inputs, options, bundle): the message is for the user."""


# --- the bundle -------------------------------------------------------------------------------
def find_bundle(bundle_dir: str | os.PathLike[str] | None = None) -> Path:
    """The bundle folder to use.

    Args:
        bundle_dir: a bundle folder; None for the default ``lsm_sss``, looked up in
            ``$LSMSEG_BUNDLES``, ``./bundles`` and the source checkout lsmseg runs from.

    Raises:
        SegmentError: the folder (or the default) cannot be found.
    """
    if bundle_dir is not None:
        path = Path(bundle_dir)
        if not path.is_dir():
            raise SegmentError(f"bundle folder {path} does not exist")
        return path
    candidates = []
    if os.environ.get("LSMSEG_BUNDLES"):
        candidates.append(Path(os.environ["LSMSEG_BUNDLES"]) / DEFAULT_BUNDLE)
    candidates += [
        Path.cwd() / "bundles" / DEFAULT_BUNDLE,
        Path(__file__).resolve().parents[1] / "bundles" / DEFAULT_BUNDLE,
    ]
    for c in candidates:
        if (c / "configs" / "inference.json").is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise SegmentError(
        f"cannot find the default bundle {DEFAULT_BUNDLE} (looked in {looked}): "
        "pass --bundle DIR or set LSMSEG_BUNDLES to the folder holding it"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA GPU when PyTorch sees one, else the CPU; ``cpu``; ``cuda``.

    Raises:
        SegmentError: an unknown name, or ``cuda`` without a visible GPU.
    """
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise SegmentError(
                f"--device {device}: PyTorch ({torch.__version__}, {build}) sees no CUDA GPU; "
                "use --device cpu (or auto), or run the Docker image with --gpus all"
            )
        return torch.device("cuda:0" if name == "cuda" else name)
    raise SegmentError(f"unknown device {device!r}: use auto, cpu or cuda")


@dataclass
class SegmentationModel:
    """A bundle's network, loaded once, with the preprocessing its weights were trained with.

    Attributes:
        network: the LatentSpaceMapping (eval mode, on ``device``); ``network(x)`` maps
            (B, 1, S, S) images in [0, 1] to (B, 4, S, S) logits of ``class_names``.
        transform: body crop -> HU window ``hu_range`` -> resize to (S, S), and its inverse.
        bundle_dir: the bundle folder.
        name: bundle name (its folder), version: ``configs/metadata.json`` version.
        title: the metadata's human name of the model.
        weights_sha256: SHA-256 of ``models/model.pt``.
    """

    network: Any
    transform: CropWindowResize
    device: torch.device
    bundle_dir: Path
    name: str
    version: str
    title: str
    weights_sha256: str
    image_size: int
    hu_range: tuple[float, float]
    class_names: tuple[str, ...]

    @property
    def label(self) -> str:
        """Short identification for the ``model`` column: ``<bundle>@<version>``."""
        return f"{self.name}@{self.version}"

    def describe_device(self) -> str:
        """The device in words, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu``."""
        import torch

        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    def preprocess(self, hu: np.ndarray) -> tuple[np.ndarray, SliceGeometry]:
        """(H, W) HU slice -> ((1, S, S) float32 network input in [0, 1], geometry for the way back)."""
        return self.transform.forward(hu)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(B, 1, S, S) network inputs -> (B, C, S, S) float32 class probabilities (softmax).

        Runs under ``torch.inference_mode``; on CUDA with autocast (bf16 where supported, else
        fp16) - the probabilities come back in float32.
        """
        import torch

        x = torch.as_tensor(images, dtype=torch.float32).to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.device.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    logits = self.network(x)
            else:
                logits = self.network(x)
            probs = torch.softmax(logits.float(), dim=1)
        return probs.cpu().numpy()

    def provenance(self) -> dict[str, Any]:
        """Which model made the numbers: bundle, version, weights hash and input settings."""
        return {
            "model": self.title,
            "bundle": self.name,
            "bundle_version": self.version,
            "bundle_dir": str(self.bundle_dir),
            "weights": "models/model.pt",
            "weights_sha256": self.weights_sha256,
            "image_size": self.image_size,
            "hu_range": list(self.hu_range),
            "class_names": list(self.class_names),
        }


def _train_hint(bundle: Path) -> str:
    train = bundle / "configs" / "train.json"
    if train.is_file():
        return (
            f"train it first: python -m monai.bundle run --config_file {train} "
            f"(writes {bundle / 'models' / 'model.pt'}), or pass --bundle DIR of a trained bundle"
        )
    return "copy the trained weights there, or pass --bundle DIR of a trained bundle"


def _unwrap_state_dict(obj: Any) -> Mapping[str, Any]:
    """A plain state dict, also from ``{"model": state_dict}`` checkpoints (MONAI CheckpointSaver)."""
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict", "network"):
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and not any(isinstance(v, Mapping) for v in inner.values())
            ):
                return inner
        return obj
    raise SegmentError(f"models/model.pt holds a {type(obj).__name__}, not a state dict of weights")


def load_bundle(bundle_dir: str | os.PathLike[str] | None = None, device: str = "auto") -> SegmentationModel:
    """Load a bundle's network and weights once, ready for :meth:`SegmentationModel.predict`.

    Reads ``configs/inference.json`` with MONAI's ConfigParser (so ``$`` / ``@`` expressions
    work): ``network_def`` (a LatentSpaceMapping image -> 4-class mask), ``image_size`` (S, px),
    ``hu_range`` (HU window) and ``class_names``; the weights are ``models/model.pt`` (a plain
    state dict). A dry run checks that the network gives (1, 4, S, S).

    Raises:
        SegmentError: missing folder, config ids or weights (saying how to train them), weights
            that do not fit the network, or classes other than background, sat, vat, muscle.
    """
    import torch
    from monai.bundle import ConfigParser

    from lsmseg.transforms import CropWindowResize

    bundle = find_bundle(bundle_dir)
    config = bundle / "configs" / "inference.json"
    weights = bundle / "models" / "model.pt"
    if not config.is_file():
        raise SegmentError(f"bundle {bundle} has no configs/inference.json: is it a bundle folder?")
    if not weights.is_file():
        raise SegmentError(f"bundle {bundle} has no trained weights (models/model.pt): {_train_hint(bundle)}")
    torch_device = resolve_device(device)

    parser = ConfigParser()
    try:
        parser.read_config(str(config))
        parser["bundle_root"] = str(bundle)  # as `monai.bundle run --bundle_root`: no lookup by name
        missing = [k for k in ("network_def", "image_size", "hu_range") if parser.get(k) is None]
        if missing:
            raise SegmentError(f"bundle {bundle}: configs/inference.json has no {', '.join(missing)}")
        network = parser.get_parsed_content("network_def", instantiate=True)
        image_size = int(parser.get_parsed_content("image_size"))
        lo, hi = (float(v) for v in parser.get_parsed_content("hu_range"))
        default_names = [TISSUE_NAMES[t.value] for t in Tissue]
        class_names = tuple(
            str(c).lower()
            for c in (
                parser.get_parsed_content("class_names") if parser.get("class_names") else default_names
            )
        )
    except SegmentError:
        raise
    except Exception as err:
        raise SegmentError(f"bundle {bundle}: configs/inference.json cannot be parsed: {err}") from err
    if list(class_names) != default_names:
        raise SegmentError(
            f"bundle {bundle} predicts classes {list(class_names)}; lsmseg segment measures "
            f"{default_names} (in that order)"
        )

    try:
        state = _unwrap_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except SegmentError as err:
        raise SegmentError(f"bundle {bundle}: {err}") from err
    except Exception as err:
        raise SegmentError(
            f"bundle {bundle}: models/model.pt cannot be read ({err}): {_train_hint(bundle)}"
        ) from err
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    if missing or unexpected or reshaped:
        detail = [
            f"{len(keys)} {what}, e.g. {keys[0]}"
            for keys, what in (
                (missing, "missing"),
                (unexpected, "unexpected"),
                (reshaped, "of another shape"),
            )
            if keys
        ]
        raise SegmentError(
            f"bundle {bundle}: models/model.pt does not fit the network of configs/inference.json "
            f"(weights {'; '.join(detail)}): were they trained with other settings (ngf, image_size)?"
        )
    network.load_state_dict(state)
    network.to(torch_device).eval()

    metadata: dict[str, Any] = {}
    meta_path = bundle / "configs" / "metadata.json"
    if meta_path.is_file():
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            logger.warning("bundle %s: configs/metadata.json unreadable (%s)", bundle, err)
    model = SegmentationModel(
        network=network,
        transform=CropWindowResize(model_size=image_size, hu_range=(lo, hi)),
        device=torch_device,
        bundle_dir=bundle.resolve(),
        name=bundle.resolve().name,
        version=str(metadata.get("version", "unknown")),
        title=str(metadata.get("name", bundle.resolve().name)),
        weights_sha256=_sha256(weights),
        image_size=image_size,
        hu_range=(lo, hi),
        class_names=class_names,
    )
    dry = model.predict(np.zeros((1, 1, image_size, image_size), dtype=np.float32))
    if dry.shape != (1, len(class_names), image_size, image_size):
        raise SegmentError(
            f"bundle {bundle}: the network gives output {tuple(dry.shape)} for a "
            f"(1, 1, {image_size}, {image_size}) image; expected (1, {len(class_names)}, {image_size}, {image_size})"
        )
    return model


# --- the patients table ----------------------------------------------------------------------
@dataclass(frozen=True)
class PatientRecord:
    """One row of the user's patients CSV.

    Attributes:
        key: the row's case_id (or patient_id).
        line: line number in the file (1 = header), for messages.
        height_m: metres; weight_kg: kilograms; sex: as written (M / F / male / female);
        l3_slice: InstanceNumber of the L3 slice in a DICOM series (0-based slice index for a
            NIfTI volume).
        problems: values that cannot be used; a case with this row fails with them.
    """

    key: str
    line: int
    height_m: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    l3_slice: int | None = None
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The values the run used, for provenance."""
        return {
            "height_m": self.height_m,
            "weight_kg": self.weight_kg,
            "sex": self.sex,
            "l3_slice": self.l3_slice,
        }


class PatientTable:
    """The patients CSV: ``case_id`` (or ``patient_id``), ``height_m``, ``weight_kg``, ``sex``, ``l3_slice``.

    Every column but the identifier is optional; empty cells are missing values.
    """

    ID_COLUMNS = ("case_id", "patient_id")
    VALUE_COLUMNS = ("height_m", "weight_kg", "sex", "l3_slice")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records: dict[str, PatientRecord] = {}
        if not self.path.is_file():
            raise SegmentError(f"patients CSV {self.path} does not exist")
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise SegmentError(f"patients CSV {self.path} cannot be read: {err}") from err
        reader = csv.DictReader(text.splitlines())
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        id_column = next((c for c in self.ID_COLUMNS if c in columns), None)
        if id_column is None:
            raise SegmentError(
                f"patients CSV {self.path} needs a case_id or patient_id column; it has: "
                f"{', '.join(columns) or 'no header'} (expected case_id, height_m, weight_kg, sex, l3_slice)"
            )
        first_line: dict[str, int] = {}
        for line, raw in enumerate(reader, start=2):
            row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            key = row.get(id_column, "")
            if not key:
                continue
            if key in first_line:
                raise SegmentError(
                    f"patients CSV {self.path} lists {key} twice (lines {first_line[key]} and {line}): keep one row per case"
                )
            first_line[key] = line
            self.records[key] = self._record(key, line, row)

    def _record(self, key: str, line: int, row: Mapping[str, str]) -> PatientRecord:
        problems: list[str] = []
        where = f"{self.path.name} line {line}"

        def number(column: str, high: float, unit: str) -> float | None:
            text = row.get(column, "")
            if not text:
                return None
            try:
                value = float(text)
            except ValueError:
                problems.append(f"{where}: {column} {text!r} is not a number of {unit}")
                return None
            if not (math.isfinite(value) and 0 < value <= high):
                hint = " (centimetres? give metres)" if column == "height_m" and value > high else ""
                problems.append(f"{where}: {column} {text} is not a plausible value in {unit}{hint}")
                return None
            return value

        height = number("height_m", MAX_HEIGHT_M, "metres")
        weight = number("weight_kg", MAX_WEIGHT_KG, "kilograms")
        l3_text = row.get("l3_slice", "")
        l3_slice = None
        if l3_text:
            try:
                l3_slice = int(float(l3_text))
                if l3_slice != float(l3_text):
                    raise ValueError
            except ValueError:
                problems.append(f"{where}: l3_slice {l3_text!r} is not an InstanceNumber (a whole number)")
        return PatientRecord(key, line, height, weight, row.get("sex") or None, l3_slice, tuple(problems))

    def lookup(self, case: CaseSource) -> PatientRecord | None:
        """The row for a case: by case_id, else by the DICOM PatientID."""
        record = self.records.get(case.case_id)
        if record is None and case.patient_id:
            record = self.records.get(case.patient_id)
        return record

    def __len__(self) -> int:
        return len(self.records)


# --- the report ------------------------------------------------------------------------------
@dataclass
class SegmentReport:
    """What :func:`segment_cohort` did.

    Attributes:
        rows: one results row per case, in input order (the rows of results.csv).
        out_dir, results_csv, results_json: where the results are.
        processed: case ids measured (or failed) in this run; resumed: case ids reused from an
            earlier run (``resume=True``).
        model: the model label (``<bundle>@<version>``); device: where the network ran.
        timings_s: wall seconds per stage: load_model, ingest, preprocess, network,
            readout (inverse transform + measurements), writers (case files), results
            (results.csv / results.json), total.
    """

    rows: list[dict[str, Any]]
    out_dir: Path
    results_csv: Path
    results_json: Path
    processed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    model: str = ""
    device: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def n_ok(self) -> int:
        return sum(r.get("status") == STATUS_OK for r in self.rows)

    @property
    def n_failed(self) -> int:
        return sum(r.get("status") != STATUS_OK for r in self.rows)

    @property
    def exit_status(self) -> int:
        """0 when every case succeeded, 1 when some failed."""
        return 0 if self.n_failed == 0 else 1


# --- one run ---------------------------------------------------------------------------------
@dataclass
class _Prepared:
    """A case that reached the network: its slice, network input and bookkeeping."""

    case: CaseSource
    ct: CTSlice
    image: np.ndarray  # (1, S, S) float32 in [0, 1]
    geometry: SliceGeometry
    record: PatientRecord | None
    seconds: float  # ingest + preprocess so far


class _Timer:
    """Sums wall seconds per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def check_hu_range(name: str, hu_range: Sequence[float]) -> tuple[float, float]:
    """A (min, max) HU range with min < max, both finite; SegmentError otherwise."""
    try:
        lo, hi = (float(v) for v in hu_range)
    except (TypeError, ValueError):
        raise SegmentError(f"{name} must be two numbers MIN,MAX in HU, got {hu_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise SegmentError(f"{name} must be MIN,MAX in HU with MIN < MAX, got {lo:g},{hi:g}")
    if lo < -1024 or hi > 3071:
        raise SegmentError(f"{name} {lo:g},{hi:g} is outside the CT range -1024..3071 HU")
    return lo, hi


def _describe_error(err: BaseException) -> str:
    """A failed case's reason: ingest and readout messages are written for the user already."""
    from lsmseg.io import IngestError

    if isinstance(err, IngestError | SegmentError | ValueError):
        return str(err)
    if isinstance(err, MemoryError):
        return "out of memory while processing this slice"
    return f"unexpected error ({type(err).__name__}: {err}); rerun with --debug for the details"


def _check_matrix(ct: CTSlice) -> None:
    lo, hi = MATRIX_PX_RANGE
    rows, columns = ct.hu.shape
    if not (lo <= rows <= hi and lo <= columns <= hi):
        from lsmseg.io import IngestError

        raise IngestError(
            f"{ct.case_id}: the image is {rows}x{columns} pixels; an axial CT slice has "
            f"{lo} to {hi} pixels per side (usually 512x512): a thumbnail or secondary capture?"
        )


def _plausible(value: float | None, high: float) -> bool:
    return value is not None and math.isfinite(value) and 0 < value <= high


def _patient_values(ct: CTSlice, record: PatientRecord | None) -> tuple[dict[str, Any], list[str]]:
    """Height, weight and sex for the readout: DICOM first, then the patients CSV; with notes."""
    from lsmseg.readout import HeightSource, normalize_sex

    notes: list[str] = []
    dicom_height, dicom_weight = ct.patient.height_m, ct.patient.weight_kg
    if dicom_height is not None and not _plausible(dicom_height, MAX_HEIGHT_M):
        notes.append(f"DICOM PatientSize {dicom_height:g} ignored: not a height in metres")
        dicom_height = None
    if dicom_weight is not None and not _plausible(dicom_weight, MAX_WEIGHT_KG):
        notes.append(f"DICOM PatientWeight {dicom_weight:g} ignored: not a weight in kilograms")
        dicom_weight = None
    csv_height = record.height_m if record else None
    csv_weight = record.weight_kg if record else None
    if dicom_height is not None:
        height, source = dicom_height, HeightSource.DICOM
        if csv_height is not None and abs(csv_height - dicom_height) > 0.02:
            notes.append(
                f"height {dicom_height:g} m from DICOM PatientSize, patients CSV says {csv_height:g} m"
            )
    elif csv_height is not None:
        height, source = csv_height, HeightSource.CSV
    else:
        height, source = None, HeightSource.MISSING
    weight = dicom_weight if dicom_weight is not None else csv_weight
    sex = ct.patient.sex if normalize_sex(ct.patient.sex) else None
    if sex is None and record and record.sex:
        sex = record.sex
    elif sex is None:
        sex = ct.patient.sex
    return {"height_m": height, "height_source": source, "weight_kg": weight, "sex": sex}, notes


def _case_dir(out_dir: Path, case_id: str) -> Path:
    return out_dir / CASES_DIR / case_id


def _relative(path: Path, out_dir: Path) -> str:
    return path.relative_to(out_dir).as_posix()


class _Run:
    """State of one :func:`segment_cohort` call."""

    def __init__(
        self,
        out_dir: Path,
        model: SegmentationModel,
        cutoff_sets: Sequence[CutoffSet],
        vat_hu: tuple[float, float],
        refine: bool,
        timer: _Timer,
    ) -> None:
        self.out_dir = out_dir
        self.model = model
        self.cutoff_sets = list(cutoff_sets)
        self.vat_hu = vat_hu
        self.refine = refine
        self.timer = timer

    def base_row(self, case: CaseSource) -> dict[str, Any]:
        return {"case_id": case.case_id, "status": STATUS_OK, "error": None, "source": case.source}

    def error_row(self, case: CaseSource, err: BaseException, seconds: float, **extra: Any) -> dict[str, Any]:
        logger.debug("case %s failed", case.case_id, exc_info=err)
        row = self.base_row(case)
        row.update(extra)
        row.update(status=STATUS_ERROR, error=_describe_error(err))
        row.update(runtime_s=round(seconds, 3), model=self.model.label)
        return row

    def prepare(self, case: CaseSource, record: PatientRecord | None) -> _Prepared:
        """Ingest (with the quality gate) and preprocess one case."""
        from lsmseg.io import IngestError, load_case

        start = time.perf_counter()
        if record is not None and record.problems:
            raise IngestError("; ".join(record.problems))
        ct = load_case(case, record.l3_slice if record else None)
        _check_matrix(ct)
        ingested = time.perf_counter()
        self.timer.add("ingest", ingested - start)
        image, geometry = self.model.preprocess(ct.hu)
        done = time.perf_counter()
        self.timer.add("preprocess", done - ingested)
        return _Prepared(case, ct, image, geometry, record, done - start)

    def finish(self, p: _Prepared, probs: np.ndarray, network_s: float) -> dict[str, Any]:
        """Probabilities (C, S, S) -> native mask -> readout -> case files -> results row."""
        from lsmseg.io.writers import write_dicom_seg, write_mask_nifti, write_overlay_png
        from lsmseg.readout import build_readout, measure, tissue_pixels

        start = time.perf_counter()
        seconds = p.seconds + network_s
        row = self.base_row(p.case)
        if p.case.n_slices > 1 and p.record is not None:
            row["l3_slice"] = p.record.l3_slice
        if not np.all(np.isfinite(probs)):
            raise ValueError(
                "the network output has NaN values: the bundle's weights are broken (retrain or restore model.pt)"
            )
        mask = self.model.transform.inverse_mask(probs, p.geometry)  # (H, W) uint8 on the native grid
        composition = measure(mask, p.ct.hu, p.ct.spacing_mm, refine=self.refine, vat_hu=self.vat_hu)
        patient, notes = _patient_values(p.ct, p.record)
        readout = build_readout(composition, cutoff_sets=self.cutoff_sets, **patient)
        row.update(readout.to_row())
        muscle_found = bool(np.any(mask == Tissue.MUSCLE))
        measured = time.perf_counter()
        self.timer.add("readout", measured - start)

        folder = _case_dir(self.out_dir, p.case.case_id)
        files: dict[str, str | None] = {"mask_file": None, "overlay_file": None, "seg_file": None}
        write_mask_nifti(mask, p.ct, folder / MASK_FILE)
        files["mask_file"] = _relative(folder / MASK_FILE, self.out_dir)
        # The picture shows what was measured: the HU-refined tissues, IMAT on top of muscle.
        px = tissue_pixels(mask, p.ct.hu, refine=self.refine, vat_hu=self.vat_hu)
        shown = np.zeros_like(mask)
        shown[px.sat] = Tissue.SAT
        shown[px.vat] = Tissue.VAT
        shown[px.muscle] = Tissue.MUSCLE
        write_overlay_png(p.ct, shown, folder / OVERLAY_FILE, measurements=row, imat=px.imat)
        files["overlay_file"] = _relative(folder / OVERLAY_FILE, self.out_dir)
        error = None
        if not muscle_found:
            error = (
                "the model found no skeletal muscle on this slice: is it an axial L3 slice of the "
                f"abdomen? (see {files['overlay_file']})"
            )
        elif p.ct.dicom is not None:
            try:
                write_dicom_seg(
                    mask,
                    p.ct,
                    folder / SEG_FILE,
                    algorithm_name=self.model.name,
                    algorithm_version=self.model.version,
                    software_version=_lsmseg_version(),
                )
                files["seg_file"] = _relative(folder / SEG_FILE, self.out_dir)
            except Exception as err:  # highdicom rejects some source headers; the numbers stand
                logger.debug("case %s: DICOM SEG failed", p.case.case_id, exc_info=err)
                error = f"measured, but the DICOM SEG could not be written: {err}"
        written = time.perf_counter()
        self.timer.add("writers", written - measured)
        row.update(files)
        if error is not None:
            row.update(status=STATUS_ERROR, error=error)
        row["notes"] = "; ".join(notes) or None
        row.update(runtime_s=round(seconds + written - start, 3), model=self.model.label)
        return row


def _lsmseg_version() -> str:
    from lsmseg import __version__

    return __version__


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _predict(model: SegmentationModel, prepared: Sequence[_Prepared]) -> list[np.ndarray | Exception]:
    """One network call for the batch; should it fail (e.g. out of GPU memory), one call per case,
    so only the cases that cannot be run fail."""
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


def _provenance(
    model: SegmentationModel,
    cutoff_sets: Sequence[CutoffSet],
    vat_hu: tuple[float, float],
    refine: bool,
    patients_csv: Path | None,
    case_inputs: Mapping[str, Any],
) -> dict[str, Any]:
    import monai
    import pydicom
    import torch

    return {
        "lsmseg_version": _lsmseg_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": model.describe_device(),
        **model.provenance(),
        "refine": refine,
        # the Alberta ranges applied inside the predicted compartments (none without refinement)
        "hu_ranges": {
            "muscle": list(MUSCLE_HU),
            "sat": list(ADIPOSE_HU),
            "imat": list(ADIPOSE_HU),
            "vat": list(vat_hu),
        }
        if refine
        else None,
        "cutoff_sets": [s.describe() for s in cutoff_sets],
        "patients_csv": str(patients_csv) if patients_csv else None,
        "software": {"torch": torch.__version__, "monai": monai.__version__, "pydicom": pydicom.__version__},
        "case_inputs": dict(case_inputs),
    }


def _previous_run(
    out_dir: Path, provenance: Mapping[str, Any]
) -> tuple[dict[str, dict[str, Any]], Mapping[str, Any]]:
    """Rows and case inputs of an earlier run in ``out_dir`` (for resume), checked for the same settings."""
    path = out_dir / RESULTS_JSON
    if not path.is_file():
        return {}, {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        old = document["provenance"]
        rows = {str(r["case_id"]): r for r in document["cases"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SegmentError(f"--resume: {path} cannot be read ({err}): remove it or drop --resume") from err
    changed = [
        k
        for k in _RESUME_KEYS
        if json.dumps(old.get(k), sort_keys=True) != json.dumps(provenance.get(k), sort_keys=True)
    ]
    if changed:
        raise SegmentError(
            f"--resume: {path} was made with other settings ({', '.join(changed)} differ): "
            "use a new --out folder, or run without --resume to redo every case"
        )
    return rows, old.get("case_inputs") or {}


def _complete(row: Mapping[str, Any] | None, out_dir: Path) -> bool:
    """A case is complete when its row says ok and every file the row names exists."""
    if row is None or row.get("status") != STATUS_OK:
        return False
    files = [row.get(k) for k in ("mask_file", "overlay_file", "seg_file")]
    return row.get("mask_file") is not None and all((out_dir / f).is_file() for f in files if f)


def segment_cohort(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    bundle_dir: str | os.PathLike[str] | None = None,
    patients_csv: str | os.PathLike[str] | None = None,
    vat_hu: Sequence[float] = VAT_HU_DEFAULT,
    cutoffs: str | Sequence[str] = DEFAULT_CUTOFFS,
    device: str = "auto",
    refine: bool = True,
    resume: bool = False,
    batch_size: int = 8,
    progress: bool = True,
) -> SegmentReport:
    """Measure L3 body composition for every slice found in ``inputs``; write masks and reports.

    Args:
        inputs: DICOM files, folders (searched recursively, grouped by series) and NIfTI files.
            One case = one L3 slice; a multi-slice series needs ``l3_slice`` in the patients CSV.
        out_dir: receives results.csv, results.json and ``cases/<case_id>/`` with mask.nii.gz
            (the predicted compartments on the source grid), overlay.png and, for DICOM input,
            seg.dcm (a DICOM SEG referencing the source image).
        bundle_dir: bundle folder (None: the default ``lsm_sss``, see :func:`find_bundle`).
        patients_csv: ``case_id`` or ``patient_id``, ``height_m``, ``weight_kg``, ``sex``,
            ``l3_slice``; DICOM PatientSize / PatientWeight / PatientSex come first.
        vat_hu: visceral fat HU range (default -150..-50; several tools use -190..-30).
        cutoffs: cut-off set names (or "all"), see :data:`lsmseg.readout.CUTOFF_SETS`.
        device: ``auto``, ``cpu`` or ``cuda``.
        refine: apply the Alberta HU ranges inside the predicted compartments.
        resume: keep the cases of an earlier run in ``out_dir`` that are complete (status ok and
            their files present, same inputs and settings); run the others.
        batch_size: slices per network call.
        progress: show a progress bar on stderr (only when stderr is a terminal).

    Returns:
        The :class:`SegmentReport`; ``exit_status`` is 0 when every case succeeded, else 1.

    Raises:
        SegmentError: usage problems, before any case is processed: missing inputs, nothing to
            segment, bad VAT range or cut-off names, unreadable patients CSV, bundle without
            weights, a --resume folder made with other settings.
    """
    started = time.perf_counter()
    timer = _Timer()
    from lsmseg.readout import get_cutoff_sets

    vat = check_hu_range("the VAT HU range", vat_hu)
    try:
        cutoff_sets = get_cutoff_sets(cutoffs)
    except ValueError as err:
        raise SegmentError(str(err)) from err
    if int(batch_size) < 1:
        raise SegmentError(f"batch size must be a whole number >= 1, got {batch_size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SegmentError(f"--out {out} is a file, not a folder")
    if not inputs:
        raise SegmentError("no input given: name DICOM files, DICOM folders or NIfTI files")
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        raise SegmentError(f"input not found: {', '.join(missing)}")
    patients = PatientTable(patients_csv) if patients_csv is not None else None

    from lsmseg.io import discover_cases

    t0 = time.perf_counter()
    cases = discover_cases([Path(p) for p in inputs])
    timer.add("ingest", time.perf_counter() - t0)
    if not cases:
        raise SegmentError(
            f"no DICOM or NIfTI slices found in {', '.join(str(p) for p in inputs)} "
            "(DICOM folders are searched recursively; NIfTI files end in .nii or .nii.gz)"
        )

    t0 = time.perf_counter()
    model = load_bundle(bundle_dir, device)
    timer.add("load_model", time.perf_counter() - t0)

    records = {c.case_id: patients.lookup(c) if patients else None for c in cases}
    case_inputs = {
        c.case_id: {"source": c.source, "patients_csv": r.as_dict() if r else None}
        for c, r in ((c, records[c.case_id]) for c in cases)
    }
    provenance = _provenance(
        model, cutoff_sets, vat, refine, patients.path if patients else None, case_inputs
    )
    out.mkdir(parents=True, exist_ok=True)

    rows: dict[str, dict[str, Any]] = {}
    resumed: list[str] = []
    if resume:
        old_rows, old_inputs = _previous_run(out, provenance)
        for c in cases:
            row = old_rows.get(c.case_id)
            same_inputs = json.dumps(old_inputs.get(c.case_id), sort_keys=True) == json.dumps(
                case_inputs[c.case_id], sort_keys=True
            )
            if same_inputs and _complete(row, out):
                assert row is not None
                rows[c.case_id] = row
                resumed.append(c.case_id)
    todo = [c for c in cases if c.case_id not in rows]

    report = SegmentReport(
        rows=[],
        out_dir=out,
        results_csv=out / RESULTS_CSV,
        results_json=out / RESULTS_JSON,
        resumed=resumed,
        model=model.label,
        device=model.describe_device(),
        timings_s=timer.seconds,
    )
    run = _Run(out, model, cutoff_sets, vat, refine, timer)

    def write_results() -> None:
        from lsmseg.io.writers import write_results as write

        t = time.perf_counter()
        report.rows = [rows[c.case_id] for c in cases if c.case_id in rows]
        write(report.rows, report.results_csv, report.results_json, provenance, cutoff_sets=cutoff_sets)
        timer.add("results", time.perf_counter() - t)

    from tqdm.auto import tqdm

    with tqdm(
        total=len(todo), disable=None if progress else True, unit="slice", desc="lsmseg segment", leave=False
    ) as bar:
        for batch in _batches(todo, int(batch_size)):
            prepared: list[_Prepared] = []
            for case in batch:
                t = time.perf_counter()
                try:
                    prepared.append(run.prepare(case, records[case.case_id]))
                except Exception as err:
                    rows[case.case_id] = run.error_row(case, err, time.perf_counter() - t)
                    report.processed.append(case.case_id)
                    bar.update(1)
            if prepared:
                t = time.perf_counter()
                outputs = _predict(model, prepared)  # (C, S, S) probabilities or the error, per case
                network_s = (time.perf_counter() - t) / len(prepared)
                timer.add("network", network_s * len(prepared))
                for p, output in zip(prepared, outputs, strict=True):
                    t = time.perf_counter()
                    try:
                        if isinstance(output, BaseException):
                            raise output
                        rows[p.case.case_id] = run.finish(p, output, network_s)
                    except Exception as err:
                        rows[p.case.case_id] = run.error_row(
                            p.case, err, p.seconds + network_s + time.perf_counter() - t
                        )
                    report.processed.append(p.case.case_id)
                    bar.update(1)
            write_results()
    if not todo:
        write_results()
    timer.add("total", time.perf_counter() - started)
    return report
