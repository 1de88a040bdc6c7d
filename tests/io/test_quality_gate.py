"""Quality gate: one test per reason to reject, with the user-facing message."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from lsmseg.io import IngestError, check_slice, read_dicom_slice
from lsmseg.io.quality import border_fraction, check_body_inside, tilt_deg
from tests.helpers.ct_dicom import make_ct_dataset, phantom_hu, write_ct


def _read(tmp_path: Path, check: bool = True, **kwargs: object):  # type: ignore[no-untyped-def]
    return read_dicom_slice(write_ct(tmp_path / "x.dcm", **kwargs), check=check)


def test_good_slice_passes(tmp_path: Path) -> None:
    ct = _read(tmp_path)
    check_slice(ct)  # uses ct.dicom.dataset
    check_slice(ct, None)


def test_non_ct_modality(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="has Modality MR, not CT: only CT gives Hounsfield units"):
        _read(tmp_path, modality="MR")


def test_missing_pixel_spacing(tmp_path: Path) -> None:
    ct = _read(tmp_path)
    ds = make_ct_dataset(spacing_mm=None)
    with pytest.raises(IngestError, match="has no PixelSpacing: cannot compute muscle area in cm2"):
        check_slice(ct, ds)
    ct.spacing_mm = (0.0, 0.7)
    with pytest.raises(IngestError, match="cannot compute muscle area in cm2"):
        check_slice(ct)


def test_non_axial_slice(tmp_path: Path) -> None:
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    with pytest.raises(IngestError, match=r"is not axial .* 90 degrees from the head-foot axis"):
        _read(tmp_path, orientation=sagittal)


def test_small_gantry_tilt_is_accepted(tmp_path: Path) -> None:
    angle = math.radians(5.0)
    tilted = (1.0, 0.0, 0.0, 0.0, math.cos(angle), -math.sin(angle))
    ct = _read(tmp_path, orientation=tilted)
    assert tilt_deg(ct) == pytest.approx(5.0, abs=1e-4)


def test_missing_position_tags(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="has no ImagePositionPatient: cannot tell"):
        _read(tmp_path, position=None)


def test_implausible_hu(tmp_path: Path) -> None:
    hu = phantom_hu()
    hu[30, 30] = 15000.0  # as a decompression error would give
    with pytest.raises(IngestError, match=r"implausible HU values \(-1000 to 15000"):
        _read(tmp_path, hu=hu, slope=1.0, intercept=-15000.0)


def test_slice_without_tissue(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"shows no body tissue \(0.00% of pixels"):
        _read(tmp_path, hu=np.full((128, 128), -1000.0))


def test_derived_image(tmp_path: Path) -> None:
    with pytest.raises(
        IngestError, match=r"ImageType DERIVED\\SECONDARY\\REFORMATTED \(DERIVED, SECONDARY\)"
    ):
        _read(tmp_path, image_type=("DERIVED", "SECONDARY", "REFORMATTED"))


def test_body_touching_border(tmp_path: Path) -> None:
    hu = np.full((128, 128), 40.0)  # the body fills the field of view
    hu[:, :4] = -1000.0
    with pytest.raises(IngestError, match=r"the body touches the image border \(\d+% of the border pixels\)"):
        _read(tmp_path, hu=hu)


def test_real_zoomed_slice_touches_the_border() -> None:
    ct = read_dicom_slice(get_testdata_file("CT_small.dcm"), check=False)
    with pytest.raises(IngestError, match="the body touches the image border"):
        check_body_inside(ct, None)


def test_border_fraction_counts_each_border_pixel_once() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[0, :] = True
    assert border_fraction(mask) == pytest.approx(10 / 36)


def test_a_thumbnail_is_not_a_scanner_slice(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"the image is 96x128 pixels; an axial CT slice has 128 to 2048"):
        _read(tmp_path, hu=phantom_hu((96, 128)))


# --- wrong reasons fixed (issue 11): each input gets the reason a clinician would want ----------


def test_image_type_values_are_stripped(tmp_path: Path) -> None:
    """693_UNCI.dcm writes 'DERIVED ' with DICOM's padding space: still DERIVED."""
    with pytest.raises(IngestError, match=r"ImageType DERIVED\\PRIMARY\\AXIAL \(DERIVED\)"):
        _read(tmp_path, image_type=("DERIVED ", "PRIMARY", "AXIAL"))


def test_axial_localizer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"a localizer \(scout\) image, not an axial CT slice"):
        _read(tmp_path, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))


def test_eight_bit_export_is_refused_for_its_bit_depth(tmp_path: Path) -> None:
    ds = make_ct_dataset()
    ds.BitsStored = 8
    with pytest.raises(
        IngestError, match=r"has BitsStored 8: an 8-bit image .* cannot hold CT Hounsfield units"
    ):
        read_dicom_slice(write_ct(tmp_path / "x8.dcm", ds))


def test_label_map_given_as_image_is_named_a_label_map(tmp_path: Path) -> None:
    labels = np.zeros((128, 144), dtype=np.float32)
    labels[30:90, 30:110] = 1
    labels[40:60, 40:60] = 3
    with pytest.raises(
        IngestError, match=r"holds only 3 distinct values \(-1024, -1023, -1021\): a label map"
    ):
        _read(tmp_path, hu=labels - 1024.0)


def test_lossy_compression_is_noted_not_refused(tmp_path: Path) -> None:
    ds = make_ct_dataset()
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = "8.2"
    ct = read_dicom_slice(write_ct(tmp_path / "lossy.dcm", ds))
    assert ct.warnings == [
        "lossy compressed pixels (LossyImageCompression 01, ratio 8.2): HU statistics may be altered"
    ]
    assert read_dicom_slice(write_ct(tmp_path / "plain.dcm")).warnings == []
