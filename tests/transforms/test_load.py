"""LoadCTd: a slice file becomes a MetaTensor in HU with its RAS affine."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lsmseg.io import IngestError
from lsmseg.transforms.load import LoadCTd, case_id_of
from tests.helpers.bundles import synthetic_l3


def test_load_ctd_reads_hu_and_spacing(tmp_path: Path) -> None:
    hu, _ = synthetic_l3((128, 160), table=False)
    path = tmp_path / "case.nii.gz"
    # stored (x, y, z), RAS affine in mm
    nib.save(nib.Nifti1Image(hu.T[:, :, None].astype(np.int16), np.diag([0.7, 0.8, 3.0, 1.0])), path)
    image = LoadCTd("image")({"image": str(path)})["image"]
    assert image.shape[0] == 1 and sorted(image.shape[1:]) == [128, 160]
    np.testing.assert_allclose(sorted(image.pixdim[:2].tolist()), [0.7, 0.8])
    assert float(image.min()) == -1000.0 and image.meta["filename_or_obj"] == str(path)
    assert case_id_of(path) == "case"


def test_load_ctd_fails_on_a_non_ct(tmp_path: Path) -> None:
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 1), np.int16), np.eye(4)), path)
    with pytest.raises(IngestError):
        LoadCTd("image")({"image": str(path)})
