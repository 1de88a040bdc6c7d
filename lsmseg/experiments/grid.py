"""What a sweep runs: the cells of the grid, the presets and the bundle overrides of each run."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmseg.errors import UsageError

# Settings of each preset, applied as bundle overrides (command-line values win).
PRESETS: dict[str, dict[str, Any]] = {
    # The bundle's own defaults: ngf 64, 128 px, 1000 epochs, patience 100 (the paper).
    "paper": {},
    # Widths and budgets that finish the 24-run grid (4 methods x 3 proportions x 2 seeds)
    # within an hour on 2 CPU cores: benchmarks/README.md ("SIT sweep") has the measurements.
    # The learning rate is 10x the paper's because the epoch budget is ~30x smaller.
    "cpu": {"ngf": 8, "ndf": 16, "batch_size": 16, "max_epochs": 30, "patience": 8, "learning_rate": 1e-3},
}
# Runs at a time by default: one single-threaded run per core on the CPU (small convolutions
# scale poorly over threads, and one thread per run is immune to the OpenMP barrier stalls that
# several multi-threaded processes on a shared machine suffer), one run with every core else.
DEFAULT_JOBS: dict[str, int | None] = {"cpu": None, "paper": 1}
CPU_IMAGE_SIZE = 64  # px: SIT bundles at the cpu preset use a 64 px copy of the data set
SIT_SAMPLES = 500  # pairs in the SIT data set (paper); the cpu preset keeps all of them


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: a method trained with a paired ``proportion`` in (0, 1] and a seed."""

    method: str
    proportion: float
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        """(method, proportion text, seed): what a ``results.csv`` row is matched on to resume."""
        return (self.method, fmt_proportion(self.proportion), self.seed)

    @property
    def name(self) -> str:
        """Run folder name, e.g. ``lsm_p0.05_s1``."""
        return f"{self.method}_p{fmt_proportion(self.proportion)}_s{self.seed}"


def fmt_proportion(p: float | str) -> str:
    """Canonical text of a proportion (``1``, ``0.2``, ``0.05``): the key that resumes match on."""
    return f"{float(p):g}"


def plan_runs(methods: Sequence[str], proportions: Sequence[float], seeds: Sequence[int]) -> list[RunSpec]:
    """The grid, proportion-major so that partial sweeps compare methods at equal proportions."""
    return [RunSpec(m, float(p), int(s)) for s in seeds for p in proportions for m in methods]


def check_preset(preset: str) -> None:
    """Raise :class:`UsageError` naming the valid presets unless ``preset`` is one."""
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")


def check_bundle(bundle: str | os.PathLike) -> Path:
    """The absolute path of a bundle folder with ``configs/train.json`` and ``configs/evaluate.json``."""
    path = Path(bundle).resolve()
    for name in ("train.json", "evaluate.json"):
        if not (path / "configs" / name).is_file():
            raise FileNotFoundError(f"{path} is not a bundle with configs/{name}")
    return path


def _uses_sit(bundle: Path) -> bool:
    """Whether the bundle's default data set is the generated SIT (the cpu preset can shrink it)."""
    config = json.loads((bundle / "configs" / "train.json").read_text())
    return "lsmseg.data.sit" in str(config.get("dataset_dir", ""))


def sit_folder(size: int, n: int = SIT_SAMPLES, seed: int = 0) -> str:
    """A cached SIT folder at ``size`` px (same ring parameters as the 128 px set of this seed),
    generated once under :func:`lsmseg.data.cache.cache_root`."""
    from lsmseg.data.cache import generated_folder
    from lsmseg.data.sit import generate_sit, write_sit_folder

    def build(tmp: Path) -> None:
        write_sit_folder(tmp, *generate_sit(n, size=size, seed=seed))

    return str(generated_folder(f"sit-n{n}-s{seed}-{size}px-v1", build))


def preset_overrides(bundle: Path, preset: str) -> dict[str, Any]:
    """Bundle overrides of a preset; the cpu preset points SIT bundles at a 64 px data set."""
    check_preset(preset)
    overrides = dict(PRESETS[preset])
    if preset == "cpu" and _uses_sit(bundle):
        overrides["image_size"] = CPU_IMAGE_SIZE
        overrides["dataset_dir"] = sit_folder(CPU_IMAGE_SIZE)
    return overrides


def run_overrides(spec: RunSpec, base: Mapping[str, Any], run_dir: Path, bundle: Path) -> dict[str, Any]:
    """All overrides of one run: the sweep's settings, the grid cell and the run's folders."""
    return {
        **base,
        "bundle_root": str(bundle),
        "method": spec.method,
        "proportion": spec.proportion,
        "seed": spec.seed,
        "ckpt_dir": str(run_dir / "ckpt"),
        "output_dir": str(run_dir / "output"),
    }


def bundle_commands(bundle: Path, overrides: Mapping[str, Any]) -> str:
    """The ``python -m monai.bundle run`` commands equivalent to one run (train, then test)."""
    configs = bundle / "configs"
    args = " ".join(f"--{k} {shlex.quote(_cli_value(v))}" for k, v in overrides.items())
    train = _config_list(configs / "train.json")
    both = _config_list(configs / "train.json", configs / "evaluate.json")
    return (
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        f"python -m monai.bundle run --config_file {train} {args}\n"
        f"python -m monai.bundle run --config_file {both} {args}\n"
    )


def _config_list(*paths: Path) -> str:
    """A shell word holding the Python list literal ``monai.bundle run`` expects for several configs."""
    literal = "[" + ",".join(f"'{p}'" for p in paths) + "]"
    plain = not any(c in literal for c in '"$`\\')
    return f'"{literal}"' if plain else shlex.quote(literal)


def _cli_value(v: Any) -> str:
    """A value as ``monai.bundle run`` parses it back: JSON for containers, booleans and None."""
    return json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else str(v)
