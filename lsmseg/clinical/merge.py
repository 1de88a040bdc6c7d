"""``merge_shards``: the results files of N shards -> results.csv / results.json of one run.

The merged pair is what a single process would have written for the cohort: the same rows in
the same (input) order, the same columns and the same provenance - the shards' provenance less
their ``shard`` entry, with the earliest start ``date`` and, when the ranks ran on several
devices, each device named once. Shards made with another model or other settings, a missing
shard or an unfinished one are refused, saying which and what to do.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsmseg.clinical.results import CASES_DIR, RESULTS_CSV, RESULTS_JSON, write_results
from lsmseg.clinical.shard import SHARD_JSON, Shard
from lsmseg.errors import UsageError
from lsmseg.readout import get_cutoff_sets

# provenance entries that may differ between the shards of one run
PER_SHARD = ("date", "device", "shard")


def find_shards(folders: Sequence[Path], count: int | None = None) -> dict[Shard, Path]:
    """The shard results files (``results.shard-K-of-N.json``) in ``folders``, by shard; only
    those of ``count`` shards when given.

    Raises:
        UsageError: none found, a shard found twice, shard files of different N, a shard missing.
    """
    found: dict[Shard, Path] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("results.shard-*-of-*.json")):
            match = SHARD_JSON.fullmatch(path.name)
            if match is None or (count is not None and int(match.group(2)) != count):
                continue
            shard = Shard(int(match.group(1)), int(match.group(2)))
            if shard in found:
                raise UsageError(
                    f"shard {shard.index}/{shard.count} is in both {found[shard].parent} and {folder}"
                )
            found[shard] = path
    where = ", ".join(str(f) for f in folders)
    if not found:
        raise UsageError(
            f"no shard results (results.shard-K-of-N.json) in {where}: run lsmseg segment --shard K/N first"
        )
    counts = sorted({s.count for s in found})
    if len(counts) > 1:
        raise UsageError(
            f"{where} holds shards of different runs (N = {', '.join(map(str, counts))}): "
            "keep the shard files of one run, or merge each run into its own --out"
        )
    missing = [f"{k}/{counts[0]}" for k in range(counts[0]) if Shard(k, counts[0]) not in found]
    if missing:
        raise UsageError(
            f"shard {', '.join(missing)} missing in {where}: run lsmseg segment --shard K/N for each"
        )
    return dict(sorted(found.items(), key=lambda item: item[0].index))


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document["provenance"], dict) or not isinstance(document["cases"], list):
            raise TypeError("provenance or cases of the wrong type")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path} cannot be read ({err}): rerun that shard with --resume") from err
    return document


def _settings(provenance: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in provenance.items() if k not in PER_SHARD}


def merged_provenance(documents: dict[Shard, dict[str, Any]]) -> dict[str, Any]:
    """One run's provenance from the shards' (UsageError when their settings differ)."""
    (first, head), *rest = documents.items()
    settings = _settings(head["provenance"])
    for shard, document in rest:
        other = _settings(document["provenance"])
        changed = sorted(
            k
            for k in settings.keys() | other.keys()
            if json.dumps(settings.get(k), sort_keys=True) != json.dumps(other.get(k), sort_keys=True)
        )
        if changed:
            raise UsageError(
                f"shard {shard.index}/{shard.count} was made with other settings or another model than "
                f"shard {first.index}/{first.count} ({', '.join(changed)} differ): rerun it with the "
                "same inputs, bundle and options"
            )
    provenances = [d["provenance"] for d in documents.values()]
    devices = list(dict.fromkeys(str(p.get("device")) for p in provenances))
    dates = sorted(str(p["date"]) for p in provenances if p.get("date"))
    merged = {k: v for k, v in head["provenance"].items() if k != "shard"}
    merged.update(device=", ".join(devices) if len(devices) > 1 else provenances[0].get("device"))
    if dates:
        merged["date"] = dates[0]
    return merged


def merged_rows(documents: dict[Shard, dict[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Every shard's rows in input ``order`` (UsageError when a shard did not finish its cases)."""
    rows: dict[str, dict[str, Any]] = {}
    for shard, document in documents.items():
        own = {str(r["case_id"]): r for r in document["cases"]}
        expected = shard.owns(order)
        if set(own) != expected:
            raise UsageError(
                f"shard {shard.index}/{shard.count} has {len(set(own) & expected)} of its {len(expected)} "
                "cases: it was interrupted - rerun it with --resume, then merge again"
            )
        rows.update(own)
    return [rows[case_id] for case_id in order]


def merge_shards(
    folders: Sequence[Path], out: Path, count: int | None = None
) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Combine the shard results in ``folders`` into ``out``/results.csv and results.json.

    Case folders of shards outside ``out`` are copied to ``out/cases`` (the rows name them
    relative to the results files). ``count``: merge only shard files of N = count.

    Returns:
        The results.csv and results.json paths and the merged rows.

    Raises:
        UsageError: see :func:`find_shards`, :func:`merged_provenance`, :func:`merged_rows`.
    """
    found = find_shards(folders, count)
    documents = {shard: _read(path) for shard, path in found.items()}
    provenance = merged_provenance(documents)
    rows = merged_rows(documents, list((provenance.get("case_inputs") or {}).keys()))
    out.mkdir(parents=True, exist_ok=True)
    for shard, path in found.items():
        if path.parent.resolve() != out.resolve():
            for row in documents[shard]["cases"]:
                source = path.parent / CASES_DIR / str(row["case_id"])
                if source.is_dir():
                    shutil.copytree(source, out / CASES_DIR / str(row["case_id"]), dirs_exist_ok=True)
    names = [s["name"] for s in provenance.get("cutoff_sets") or []]
    cutoff_sets = get_cutoff_sets(",".join(names)) if names else None
    csv_path, json_path = write_results(
        rows, out / RESULTS_CSV, out / RESULTS_JSON, provenance, cutoff_sets=cutoff_sets
    )
    return csv_path, json_path, rows
