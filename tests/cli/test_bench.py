"""``lsmseg bench``: a CSV with every column, the profile, one-line usage errors."""

import csv
from pathlib import Path

import pytest
import torch

from lsmseg.cli.main import main
from lsmseg.experiments.bench import BENCH_COLUMNS

TINY = "--ngf 4 --ndf 4 --image-size 32 --batch-size 4 --steps 2 --warmup 1 --peak-sizes 128".split()


def test_bench_writes_one_row_per_method_with_every_column(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.csv"
    assert main(["bench", *TINY, "--threads", "1", "--out", str(out)]) == 0
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == BENCH_COLUMNS
    assert [r["method"] for r in rows] == ["basic", "sop", "ioda", "lsm", "reference"]
    assert rows[2]["stage"] == "finetune" and rows[4]["vs_reference"] == "1.0"
    for r in rows:
        assert (r["torch_threads"], r["image_size"], r["ngf"], r["batch_size"], r["steps"]) == (
            "1",
            "32",
            "4",
            "4",
            "2",
        )
    assert capsys.readouterr().out.count("samples/s") == 5


def test_bench_profile_rounds_and_append(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.csv"
    args = ["bench", *TINY, "--methods", "lsm", "--rounds", "2", "--out", str(out)]
    assert main([*args, "--profile", str(tmp_path / "prof")]) == 0
    assert main([*args, "--append"]) == 0
    assert len(out.read_text().strip().splitlines()) == 3  # header + one row per call
    assert "round 2/2" in capsys.readouterr().out
    table = next((tmp_path / "prof").glob("profile_lsm_*.txt")).read_text()
    assert "Self CPU" in table and "convolution" in table


def test_unknown_method_is_a_one_line_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["bench", "--methods", "lsm,gan", "--out", str(tmp_path / "b.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown method 'gan'" in err and "valid: basic, sop, ioda, lsm" in err
    assert not (tmp_path / "b.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["bench", "--device", "cuda", "--out", str(tmp_path / "b.csv")]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err


def test_bad_numbers_are_rejected_by_the_parser(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", "--steps", "0", "--out", str(tmp_path / "b.csv")])
    assert e.value.code == 2
    assert "expected a whole number >= 1" in capsys.readouterr().err
