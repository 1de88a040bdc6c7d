"""merge_shards: shard results -> one run's results, refusing shards that do not belong together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lsmseg.clinical.merge import merge_shards
from lsmseg.clinical.results import write_results
from lsmseg.clinical.shard import Shard
from lsmseg.errors import UsageError
from lsmseg.readout import get_cutoff_sets

IDS = ["p3", "p1", "p2"]  # input order; sorted p1 p2 p3: p1, p3 -> shard 0, p2 -> shard 1
CUTOFFS = get_cutoff_sets("martin2013,prado2008")  # not the registry's order


def provenance(**changes: Any) -> dict[str, Any]:
    return {
        "date": "2026-11-29T10:00:00+00:00",
        "device": "cpu",
        "weights_sha256": "abc",
        "cutoff_sets": [s.describe() for s in CUTOFFS],
        "case_inputs": {i: {"source": f"{i}.dcm"} for i in IDS},
        **changes,
    }


def write_shard(out: Path, shard: Shard, ids: list[str], **changes: Any) -> None:
    rows = [{"case_id": i, "status": "ok", "muscle_area_cm2": float(len(i))} for i in ids]
    prov = provenance(shard={"index": shard.index, "count": shard.count}, **changes)
    write_results(rows, out / shard.results_csv, out / shard.results_json, prov, cutoff_sets=CUTOFFS)


def test_merged_results_are_the_single_runs_rows_order_columns_and_provenance(tmp_path: Path) -> None:
    write_shard(tmp_path, Shard(0, 2), ["p3", "p1"], date="2026-11-29T10:00:05+00:00")
    write_shard(tmp_path, Shard(1, 2), ["p2"])
    single = tmp_path / "single"
    rows = [{"case_id": i, "status": "ok", "muscle_area_cm2": float(len(i))} for i in IDS]
    write_results(rows, single / "results.csv", single / "results.json", provenance(), cutoff_sets=CUTOFFS)
    csv_path, json_path, merged = merge_shards([tmp_path], tmp_path)
    assert [r["case_id"] for r in merged] == IDS
    assert csv_path.read_bytes() == (single / "results.csv").read_bytes()
    assert json.loads(json_path.read_text()) == json.loads((single / "results.json").read_text())


def test_shards_of_another_model_missing_or_unfinished_are_refused(tmp_path: Path) -> None:
    write_shard(tmp_path, Shard(0, 2), ["p3", "p1"])
    with pytest.raises(UsageError, match="shard 1/2 missing"):
        merge_shards([tmp_path], tmp_path)
    write_shard(tmp_path, Shard(1, 2), ["p2"], weights_sha256="other")
    with pytest.raises(UsageError, match=r"shard 1/2 was made with other settings.*weights_sha256"):
        merge_shards([tmp_path], tmp_path)
    write_shard(tmp_path, Shard(1, 2), [])
    with pytest.raises(UsageError, match=r"shard 1/2 has 0 of its 1 cases.*--resume"):
        merge_shards([tmp_path], tmp_path)
    write_shard(tmp_path, Shard(0, 3), ["p1"])
    with pytest.raises(UsageError, match="different runs"):
        merge_shards([tmp_path], tmp_path)
    assert not (tmp_path / "results.csv").exists()
