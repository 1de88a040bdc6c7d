"""Cohorts split over processes: ``--shard K/N`` (a SLURM array, a Kubernetes indexed job) and
torchrun ranks.

Shards are 0-based, as torch ranks, ``$SLURM_ARRAY_TASK_ID`` with ``--array=0-(N-1)`` and
Kubernetes' ``$JOB_COMPLETION_INDEX`` are: shard K of N takes the cases whose index in the sorted
list of case ids is K modulo N, so every process that sees the same inputs picks the same cases
without talking to the others, and the shards are disjoint and cover the cohort. Each shard
writes its case folders and ``results.shard-K-of-N.{csv,json}``; :mod:`lsmseg.clinical.merge`
combines the shard files into results.csv / results.json.

Under torchrun (``WORLD_SIZE`` > 1 in the environment) rank R runs shard R of WORLD_SIZE on its
own device (``cuda:LOCAL_RANK``, or the CPU), and the ranks meet once at the end in a gloo
process group: the only collective is a barrier before rank 0 merges the shard files, so gloo
serves GPU runs as well and no tensor ever crosses ranks.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lsmseg.errors import UsageError
from lsmseg.io import CaseSource

T = TypeVar("T", bound=CaseSource)
SHARD_JSON = re.compile(r"results\.shard-(\d+)-of-(\d+)\.json")
# How long a finished rank waits for the slowest one (gloo's default of 30 minutes is shorter
# than the spread of a large cohort over unevenly loaded nodes).
BARRIER_TIMEOUT = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    @property
    def name(self) -> str:
        """``shard-K-of-N``: the tag in the shard's results file names."""
        return f"shard-{self.index}-of-{self.count}"

    @property
    def results_csv(self) -> str:
        return f"results.{self.name}.csv"

    @property
    def results_json(self) -> str:
        return f"results.{self.name}.json"

    def owns(self, case_ids: Sequence[str]) -> set[str]:
        """The ids of ``case_ids`` in this shard: those at sorted index K modulo N."""
        return {cid for i, cid in enumerate(sorted(case_ids)) if i % self.count == self.index}

    def select(self, cases: Sequence[T]) -> list[T]:
        """The cases of this shard, in their input order."""
        mine = self.owns([c.case_id for c in cases])
        return [c for c in cases if c.case_id in mine]


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> Shard(K, N), 0 <= K < N.

    Raises:
        UsageError: saying what a valid value looks like.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise UsageError(f"--shard must be K/N (0-based shard K of N, e.g. 0/4 ... 3/4), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise UsageError(
            f"--shard {index}/{count}: K counts from 0 and must be below N (0/{max(count, 1)} ... "
            f"{max(count, 1) - 1}/{max(count, 1)}); with 1-based task ids pass $((ID - 1))/N"
        )
    return Shard(index, count)


def rank_shard(env: Mapping[str, str] = os.environ) -> tuple[Shard, int] | None:
    """(this rank's shard, LOCAL_RANK) under torchrun with more than one process, else None."""
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return Shard(int(env.get("RANK", "0")), world), int(env.get("LOCAL_RANK", "0"))


def rank_device(device: str, local_rank: int) -> str:
    """One device per rank: ``cuda:LOCAL_RANK`` for ``auto`` / ``cuda`` when CUDA is there, else as given."""
    import torch

    name = device.strip().lower()
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return f"cuda:{local_rank}"
    return "cpu" if name == "auto" else device


class RankGroup:
    """The gloo process group of a torchrun launch, used for barriers only (module docstring)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        self._owned = not dist.is_initialized()
        if self._owned:
            dist.init_process_group(backend="gloo", timeout=BARRIER_TIMEOUT)

    def barrier(self) -> None:
        self._dist.barrier()

    def close(self) -> None:
        if self._owned and self._dist.is_initialized():
            self._dist.destroy_process_group()
