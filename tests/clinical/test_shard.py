"""Shards: K/N parsing, a disjoint cover of the cohort by sorted case id, torchrun ranks."""

from __future__ import annotations

import pytest

from lsmseg.clinical.shard import Shard, parse_shard, rank_device, rank_shard
from lsmseg.errors import UsageError
from lsmseg.io import CaseSource


@pytest.mark.parametrize(
    ("text", "shard"), [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 1 / 2 ", Shard(1, 2))]
)
def test_shard_k_of_n_is_zero_based(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard


@pytest.mark.parametrize(
    ("text", "says"), [("2/2", "counts from 0"), ("1/0", "counts from 0"), ("a/2", "K/N"), ("1", "K/N")]
)
def test_a_bad_shard_is_a_usage_error_saying_what_is_valid(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_shard(text)


def test_shards_split_the_sorted_case_ids_into_a_disjoint_cover_in_input_order() -> None:
    cases = [CaseSource(case_id=c, kind="dicom", source=c) for c in ("e", "a", "d", "b", "c")]
    picked = [[c.case_id for c in Shard(k, 2).select(cases)] for k in range(2)]
    assert picked == [["e", "a", "c"], ["d", "b"]]  # sorted a b c d e: a, c, e to shard 0; input order kept
    assert Shard(1, 2).name == "shard-1-of-2" and Shard(1, 2).results_json == "results.shard-1-of-2.json"


def test_torchrun_ranks_become_shards_and_one_process_is_no_shard() -> None:
    assert rank_shard({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == (Shard(2, 4), 0)
    assert rank_shard({"WORLD_SIZE": "1", "RANK": "0"}) is None and rank_shard({}) is None
    assert rank_device("cpu", 1) == "cpu"
