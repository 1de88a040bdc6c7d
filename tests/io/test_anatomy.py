"""Anatomy gate: known slices with known verdicts (synthetic head, thorax, legs, water; the L3
phantom; real pydicom test files when the pydicom-data package is installed)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from lsmseg.io import IngestError, read_dicom_slice
from lsmseg.io.anatomy import anatomy_features, check_anatomy
from tests.helpers import anatomy


def _real(name: str) -> Path:
    """A file of pydicom-data (skipped without the package: pydicom would try to download it)."""
    try:
        importlib.metadata.distribution("pydicom-data")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pydicom-data is not installed")
    from pydicom.data import get_testdata_file

    return Path(str(get_testdata_file(name)))


def test_head_is_refused_for_its_skull_ring() -> None:
    with pytest.raises(IngestError, match=r"a head slice, not the abdomen: a closed bone ring \(skull\)"):
        check_anatomy(anatomy.head())


def test_thorax_is_refused_for_its_lungs() -> None:
    with pytest.raises(IngestError, match=r"a chest slice, not L3: air inside the body \(lungs\) covers 41%"):
        check_anatomy(anatomy.thorax())


def test_two_legs_are_refused_as_separate_contours() -> None:
    with pytest.raises(IngestError, match=r"2 separate body contours .* legs or a pelvis below the hips"):
        check_anatomy(anatomy.legs())


def test_a_body_without_fat_is_refused() -> None:
    with pytest.raises(IngestError, match=r"no fat compartment: fat \(-190..-30 HU\) is 0.\d% of the body"):
        check_anatomy(anatomy.water_phantom())


@pytest.mark.parametrize("seed", range(5))
def test_the_l3_phantom_passes_without_warning(seed: int) -> None:
    assert check_anatomy(anatomy.l3_phantom(seed)) == []
    assert anatomy_features(anatomy.l3_phantom(seed)).midline_bone


def test_real_head_ct_is_refused() -> None:
    """pydicom-data 693_UNCI.dcm: a real head CT (ImageType 'DERIVED ' aside)."""
    ct = read_dicom_slice(_real("693_UNCI.dcm"), check=False)
    with pytest.raises(IngestError, match="a head slice, not the abdomen"):
        check_anatomy(ct)


def test_real_upper_abdomen_is_flagged_as_not_confirmed_l3() -> None:
    """pydicom-data explicit_VR-UN.dcm: an abdomen at about L1/L2, ribs in both flanks."""
    ct = read_dicom_slice(_real("explicit_VR-UN.dcm"))
    assert check_anatomy(ct) == [
        "L3 not confirmed: bone lateral to the spine on both sides (ribs above L3, or iliac wings below)"
    ]
