"""``lsmseg phantom``: the summary line, the files, and usage errors as exit status 2."""

from __future__ import annotations

import pytest

from lsmseg.cli.main import main
from lsmseg.cli.phantom import phantom_cli
from lsmseg.errors import UsageError


def test_phantom_cli_summary_and_files(tmp_path):
    summary = phantom_cli(tmp_path / "cli", 1, "nifti", 0)
    assert summary.startswith("wrote 1 synthetic L3 slices (nifti)") and str(tmp_path / "cli") in summary
    assert "phantom_0001 .. phantom_0001" in summary
    for name in ("truth.csv", "patients.csv", "images/phantom_0001.nii.gz", "masks/phantom_0001.nii.gz"):
        assert (tmp_path / "cli" / name).is_file(), name


@pytest.mark.parametrize(("n", "fmt", "message"), [(1, "png", "format"), (0, "dicom", "n >= 1")])
def test_phantom_cli_refuses_bad_arguments(tmp_path, n, fmt, message):
    with pytest.raises(UsageError, match=message):
        phantom_cli(tmp_path / "bad", n, fmt, 0)
    assert not (tmp_path / "bad").exists()


def test_lsmseg_phantom_usage_error_exits_2(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "bad"), "--n", "0"]) == 2
    assert "n >= 1" in capsys.readouterr().err
