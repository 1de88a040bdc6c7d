"""Turn what the user named (DICOM files, folders, NIfTI files) into cases: one case = one L3 slice.

DICOM files are grouped by SeriesInstanceUID; a series of one file is a ready case, a series of
several slices needs the user to name its L3 slice (InstanceNumber). Discovery reads headers
only and never raises for a bad file: an unreadable or truncated file becomes a case carrying an
``error``, so the caller writes an error row and goes on with the cohort (STYLE.md 9).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import pydicom
from pydicom.uid import UID

from lsmseg.io.ctslice import CTSlice, IngestError
from lsmseg.io.dicom import read_dataset, safe_case_id, slice_from_dataset
from lsmseg.io.nifti import is_nifti, nifti_slice_count, nifti_stem, read_nifti_slice

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
UNDEFINED_LENGTH = 0xFFFFFFFF  # encapsulated (compressed) pixel data: its length is not declared


@dataclass
class CaseSource:
    """One case to ingest: a DICOM series (one file per slice) or a NIfTI file.

    Attributes:
        case_id: PatientID for DICOM (``_s<SeriesNumber>`` added when the patient has several
            series), the file name stem for NIfTI; made safe for folder names and unique.
        kind: "dicom", "nifti", or "unknown" for an input that does not exist.
        source: the file, or the folder holding the series, as shown to the user.
        files: DICOM: the series' files sorted by InstanceNumber; NIfTI: the one file.
        instance_numbers: InstanceNumber of each DICOM file (None when the tag is missing).
        n_slices: slices to choose from; more than one needs an ``l3_slice``.
        patient_id, series_uid, series_number: DICOM identifiers, when known.
        error: why the case cannot be read (the caller reports it); None for a good case.
    """

    case_id: str
    kind: str
    source: str
    files: list[Path] = field(default_factory=list)
    instance_numbers: list[int | None] = field(default_factory=list)
    n_slices: int = 1
    patient_id: str | None = None
    series_uid: str = ""
    series_number: int | None = None
    error: str | None = None

    @property
    def needs_l3_slice(self) -> bool:
        """Whether loading needs the L3 slice named (InstanceNumber, or NIfTI slice index)."""
        return self.error is None and self.n_slices > 1


class _Header(NamedTuple):
    path: Path
    patient_id: str | None
    series_uid: str
    series_number: int | None
    instance_number: int | None
    sop_uid: str
    error: str | None = None  # the file is DICOM but cannot give a slice


def format_ranges(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"``."""
    values = sorted(set(numbers))
    parts: list[str] = []
    start = prev = None
    for n in [*values, None]:
        if n is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return ", ".join(parts) or "none"


def _has_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _optional_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _scan_dicom(path: Path, explicit: bool) -> _Header | None:
    """Header of a DICOM image file (with ``error`` set for a broken one); None to skip the file.

    Files the user named, files with a DICOM suffix and files with the DICM preamble are expected
    to be DICOM: failing to read them is an error. Other files in a folder (notes, CSVs) are
    tried without a preamble and skipped quietly when they are not DICOM; so are DICOM objects
    that are not images (DICOMDIR, structured reports).
    """
    expected = explicit or path.suffix.lower() in DICOM_SUFFIXES or _has_preamble(path)
    try:
        # defer_size leaves the pixel data on disk: only its declared length is needed here
        ds = pydicom.dcmread(path, force=True, defer_size="64 KB")
    except Exception as err:  # pydicom raises many types for corrupt files
        error = f"{path.name} cannot be read as DICOM: {err}"
        return _Header(path, None, "", None, None, "", error) if expected else None
    header = _Header(
        path=path,
        patient_id=str(ds.get("PatientID", "") or "").strip() or None,
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        series_number=_optional_int(ds.get("SeriesNumber")),
        instance_number=_optional_int(ds.get("InstanceNumber")),
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
    )
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    if "PixelData" not in ds:
        is_image_class = "Image Storage" in UID(sop_class).name if sop_class else False
        if explicit or (expected and (is_image_class or not sop_class)):
            error = f"{path.name} has no pixel data: a truncated file, or a DICOM object that is not an image"
            return header._replace(error=error)
        return None
    element = ds.get_item("PixelData")
    length, value_tell = getattr(element, "length", UNDEFINED_LENGTH), getattr(element, "value_tell", 0)
    size = path.stat().st_size
    if length != UNDEFINED_LENGTH and value_tell + length > size:
        error = (
            f"{path.name} is truncated: its pixel data needs {value_tell + length} bytes, the file has {size}"
        )
        return header._replace(error=error)
    if not hasattr(element, "length"):  # under defer_size: read at once, so count what came
        expected_bytes = _native_pixel_bytes(ds)
        found = len(getattr(element, "value", b"") or b"")
        if expected_bytes is not None and found < expected_bytes:
            return header._replace(
                error=f"{path.name} is truncated: its pixel data needs {expected_bytes} bytes, the file holds {found}"
            )
    return header


def _native_pixel_bytes(ds: pydicom.Dataset) -> int | None:
    """Bytes of uncompressed pixel data the header declares; None for compressed transfer syntaxes."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and UID(syntax).is_compressed:
        return None
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.BitsAllocated)
        return int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * frames * bits // 8
    except (AttributeError, TypeError, ValueError):
        return None


def _series_case(headers: list[_Header]) -> CaseSource:
    """A case from the headers of one series (case_id is set later, when all series are known)."""
    seen: set[str] = set()
    unique = []
    for h in headers:  # the same instance copied twice is one slice
        if not h.sop_uid or h.sop_uid not in seen:
            unique.append(h)
            seen.add(h.sop_uid)
    unique.sort(key=lambda h: (h.instance_number is None, h.instance_number or 0, str(h.path)))
    first = unique[0]
    source = str(first.path) if len(unique) == 1 else os.path.commonpath([str(h.path.parent) for h in unique])
    case = CaseSource(
        case_id="",
        kind="dicom",
        source=source,
        files=[h.path for h in unique],
        instance_numbers=[h.instance_number for h in unique],
        n_slices=len(unique),
        patient_id=first.patient_id,
        series_uid=first.series_uid,
        series_number=first.series_number,
    )
    if len(unique) > 1:
        numbers = [h.instance_number for h in unique]
        repeated = sorted(n for n, k in Counter(n for n in numbers if n is not None).items() if k > 1)
        if None in numbers:
            case.error = (
                f"series {first.series_uid} has slices without InstanceNumber: cannot choose the L3 slice"
            )
        elif repeated:
            case.error = (
                f"series {first.series_uid} repeats InstanceNumber {format_ranges(repeated)}: "
                "a stacked or entangled series; export the L3 slice on its own"
            )
    return case


def _name_cases(dicom_cases: list[CaseSource]) -> None:
    """case_id = PatientID, with ``_s<SeriesNumber>`` when the patient has several series."""
    per_patient = Counter(c.patient_id for c in dicom_cases if c.patient_id)
    for c in dicom_cases:
        if not c.patient_id:
            path = Path(c.source)
            c.case_id = path.stem if c.n_slices == 1 else path.name
        elif per_patient[c.patient_id] > 1:
            c.case_id = f"{c.patient_id}_s{c.series_number if c.series_number is not None else 'x'}"
        else:
            c.case_id = c.patient_id


def _make_unique(cases: list[CaseSource]) -> None:
    """Safe, unique case ids; "A" and "a" count as the same (case-insensitive file systems)."""
    taken: set[str] = set()
    for c in cases:
        base = safe_case_id(c.case_id)
        case_id, k = base, 1
        while case_id.casefold() in taken:
            k += 1
            case_id = f"{base}_{k}"
        c.case_id = case_id
        taken.add(case_id.casefold())


def _nifti_case(path: Path) -> CaseSource:
    case = CaseSource(case_id=nifti_stem(path), kind="nifti", source=str(path), files=[path])
    try:
        case.n_slices = nifti_slice_count(path)
    except IngestError as err:
        case.error = str(err)
    return case


def _is_under(path: Path, folders: Sequence[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == f or f in resolved.parents for f in folders)


def _files(inputs: Sequence[str | Path], exclude: Sequence[Path] = ()) -> Iterable[tuple[Path, bool]]:
    """Each file to scan, with whether the user named it (a missing input is passed on as named);
    files under ``exclude`` (the run's own output folder) are never scanned."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and not _is_under(f, exclude):
                    yield f, False
        elif not (path.exists() and _is_under(path, exclude)):
            yield path, True


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split_uid_conflicts(headers: list[_Header]) -> tuple[list[_Header], list[CaseSource]]:
    """Headers without SOPInstanceUID conflicts, and one error case per file in a conflict.

    Two files with one SOPInstanceUID are one slice copied twice when their bytes are equal (kept
    once); with different bytes, nobody can tell which is the original, so both fail.
    """
    by_uid: dict[str, list[_Header]] = {}
    for h in headers:
        if h.sop_uid:
            by_uid.setdefault(h.sop_uid, []).append(h)
    conflicted: set[Path] = set()
    errors: list[CaseSource] = []
    for uid, group in by_uid.items():
        if len(group) < 2 or len({_file_digest(h.path) for h in group}) == 1:
            continue
        names = ", ".join(h.path.name for h in group)
        for h in group:
            conflicted.add(h.path)
            errors.append(
                CaseSource(
                    case_id=h.patient_id or h.path.stem,
                    kind="dicom",
                    source=str(h.path),
                    files=[h.path],
                    patient_id=h.patient_id,
                    series_uid=h.series_uid,
                    series_number=h.series_number,
                    error=(
                        f"{h.path.name}: SOPInstanceUID {uid} is shared by files with different "
                        f"content ({names}): cannot tell which is the original; keep one"
                    ),
                )
            )
    return [h for h in headers if h.path not in conflicted], errors


def _scan(
    inputs: Sequence[str | Path], exclude: Sequence[Path]
) -> tuple[list[tuple[int, CaseSource]], list[tuple[int, _Header]]]:
    """Cases known from one file (NIfTI, missing, broken) and the headers of good DICOM files,
    each with its position in the input order."""
    ordered: list[tuple[int, CaseSource]] = []
    headers: list[tuple[int, _Header]] = []
    done: set[Path] = set()
    for position, (path, explicit) in enumerate(_files(inputs, exclude)):
        if not path.exists():
            missing = CaseSource(
                case_id=path.stem, kind="unknown", source=str(path), error=f"{path} does not exist"
            )
            ordered.append((position, missing))
            continue
        if path.resolve() in done:
            continue
        done.add(path.resolve())
        if is_nifti(path):
            ordered.append((position, _nifti_case(path)))
            continue
        scanned = _scan_dicom(path, explicit)
        if scanned is not None and scanned.error is not None:
            broken = CaseSource(
                case_id=scanned.patient_id or path.stem,
                kind="dicom",
                source=str(path),
                files=[path],
                patient_id=scanned.patient_id,
                series_uid=scanned.series_uid,
                series_number=scanned.series_number,
                error=scanned.error,
            )
            ordered.append((position, broken))
        elif scanned is not None:
            headers.append((position, scanned))
    return ordered, headers


def discover_cases(inputs: Sequence[str | Path], exclude: Sequence[str | Path] = ()) -> list[CaseSource]:
    """Find the cases in DICOM files, folders (searched recursively) and NIfTI files.

    Args:
        inputs: files and folders the user named.
        exclude: folders never searched (the run's ``--out``, so a rerun does not read its own
            outputs as input).

    Returns:
        One CaseSource per DICOM series and per NIfTI file, in the order first met, plus one
        carrying ``error`` per input that is missing, file that is DICOM but unreadable, and
        file whose SOPInstanceUID another file with different content shares.
    """
    ordered, scanned = _scan(inputs, [Path(f).resolve() for f in exclude])
    position_of = {h.path: position for position, h in scanned}
    good, conflicts = _split_uid_conflicts([h for _, h in scanned])
    ordered += [(position_of[c.files[0]], c) for c in conflicts]
    series: dict[str, list[_Header]] = {}
    first_seen: dict[str, int] = {}
    for h in good:
        key = h.series_uid or f"file:{h.path}"  # no series UID: the file is its own series
        series.setdefault(key, []).append(h)
        first_seen.setdefault(key, position_of[h.path])
    dicom_cases = [_series_case(series[key]) for key in series]
    _name_cases(dicom_cases)
    ordered += [(first_seen[key], case) for key, case in zip(series, dicom_cases, strict=True)]
    cases = [case for _, case in sorted(ordered, key=lambda pc: pc[0])]
    _make_unique(cases)
    return cases


def _select_file(case: CaseSource, instance_number: int) -> Path:
    if instance_number not in case.instance_numbers:
        available = format_ranges(n for n in case.instance_numbers if n is not None)
        raise IngestError(
            f"{case.case_id}: InstanceNumber {instance_number} is not in series {case.series_uid} "
            f"(available: {available})"
        )
    return case.files[case.instance_numbers.index(instance_number)]


def load_case(case: CaseSource, l3_slice: int | None = None, *, check: bool = True) -> CTSlice:
    """Read the L3 slice of a discovered case.

    Args:
        case: from :func:`discover_cases`.
        l3_slice: the L3 slice of a multi-slice case: its InstanceNumber for DICOM, its 0-based
            index along the slice axis for NIfTI. Ignored for single-slice cases (the slice given
            is the L3 slice).
        check: run the quality gate.

    Raises:
        IngestError: the case's discovery error, a missing or unknown ``l3_slice``, or any
            ingest or quality-gate failure; the message is for the user.
    """
    if case.error is not None:
        raise IngestError(case.error)
    if case.kind == "nifti":
        index = l3_slice if case.n_slices > 1 else None
        return read_nifti_slice(case.files[0], case.case_id, slice_index=index, check=check)
    if case.n_slices == 1:
        path = case.files[0]
    elif l3_slice is None:
        numbers = format_ranges(n for n in case.instance_numbers if n is not None)
        raise IngestError(
            f"{case.case_id}: series {case.series_uid} has {case.n_slices} slices (InstanceNumber "
            f"{numbers}): name its L3 slice in the patients CSV (column l3_slice, InstanceNumber)"
        )
    else:
        path = _select_file(case, l3_slice)
    return slice_from_dataset(read_dataset(path), path, case.case_id, check=check)


def read_dicom_series(
    folder: str | Path,
    instance_number: int,
    case_id: str | None = None,
    *,
    series_uid: str | None = None,
    check: bool = True,
) -> CTSlice:
    """Read the slice with ``instance_number`` from a folder holding one DICOM series.

    Args:
        folder: searched recursively.
        instance_number: DICOM InstanceNumber of the L3 slice.
        case_id: defaults as in :func:`discover_cases`.
        series_uid: which series, when the folder holds several.
        check: run the quality gate.

    Raises:
        IngestError: no series, several series and no ``series_uid``, or an InstanceNumber that
            is not in the series (the message lists the available ones).
    """
    cases = [c for c in discover_cases([folder]) if c.kind == "dicom"]
    broken = [c.error for c in cases if c.error is not None]
    good = [c for c in cases if not c.error and series_uid in (None, c.series_uid)]
    if not good:
        detail = f": {'; '.join(broken)}" if broken else ""
        raise IngestError(f"no readable DICOM series {series_uid or ''} in {folder}{detail}")
    if len(good) > 1:
        uids = ", ".join(c.series_uid for c in good)
        raise IngestError(f"{folder} holds {len(good)} series ({uids}): choose one with series_uid")
    case = good[0] if case_id is None else replace(good[0], case_id=case_id)
    try:
        path = _select_file(case, instance_number)
    except IngestError as err:
        if broken:  # the wanted slice may be one of the unreadable files
            raise IngestError(f"{err}; unreadable files in the folder: {'; '.join(broken)}") from err
        raise
    return slice_from_dataset(read_dataset(path), path, case.case_id, check=check)
