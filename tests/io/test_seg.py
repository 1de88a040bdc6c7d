"""DICOM SEG of the measured mask: segments, codes, colours, pixels on the source grid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lsmseg.io.labels import LABELS, rgb255
from lsmseg.io.writers import write_dicom_seg
from lsmseg.keys import Measured
from tests.helpers.writers import ct_small, measured_labels


def read_seg_pixels(path, sop_instance_uid):
    import highdicom as hd

    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance([sop_instance_uid])  # (1, rows, cols, segments)
    return seg, pixels[0]


@pytest.mark.parametrize("flips", [(False, False, False), (True, False, False), (False, True, True)])
def test_dicom_seg_round_trip(tmp_path, flips):
    import highdicom as hd
    import pydicom

    ct = ct_small(flips=flips)
    mask = measured_labels()
    seg_written = write_dicom_seg(
        mask,
        ct,
        tmp_path / "seg.dcm",
        algorithm_name="lsm_sss",
        algorithm_version="1",
        software_version="0.1.0",
        vat_hu=(-150.0, -50.0),
    )
    path = tmp_path / "seg.dcm"
    assert ct.dicom is not None
    source = ct.dicom.dataset
    ds = pydicom.dcmread(path)
    assert ds.SOPInstanceUID == seg_written.SOPInstanceUID
    assert ds.Modality == "SEG"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert (ds.Rows, ds.Columns) == (source.Rows, source.Columns)
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    referenced = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID
    # one segment per label of the table, with its name, description, codes and colour
    assert [s.SegmentLabel for s in ds.SegmentSequence] == [lb.name for lb in LABELS]
    for item, label in zip(ds.SegmentSequence, LABELS, strict=True):
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == label.type[0]
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == label.category[0]
        if label.region:
            assert item.AnatomicRegionSequence[0].CodeValue == label.region[0]
        assert item.SegmentDescription
        lab = hd.color.CIELabColor.from_rgb(*rgb255(label)).value
        assert tuple(item.RecommendedDisplayCIELabValue) == tuple(lab)
    assert "-150..-50 HU" in ds.SegmentSequence[3].SegmentDescription  # VAT
    assert "-190..-30 HU" in ds.SegmentSequence[1].SegmentDescription  # IMAT

    seg, pixels = read_seg_pixels(path, source.SOPInstanceUID)
    assert seg.get_segment_numbers() == [1, 2, 3, 4]
    on_source = ct.to_source_grid(mask)
    labels = np.zeros(on_source.shape, np.uint8)
    for index, label in enumerate(LABELS):
        np.testing.assert_array_equal(pixels[:, :, index], on_source == label.value)
        labels[pixels[:, :, index] > 0] = label.value
    np.testing.assert_array_equal(ct.from_source_grid(labels), mask)  # back on the normalised grid


def test_dicom_seg_only_present_tissues(tmp_path):
    ct = ct_small()
    mask = np.zeros((128, 128), np.uint8)
    mask[10:20, 10:20] = Measured.MUSCLE
    write_dicom_seg(
        mask, ct, tmp_path / "seg.dcm", algorithm_name="a", algorithm_version="1", software_version="0"
    )
    assert ct.dicom is not None
    seg, pixels = read_seg_pixels(tmp_path / "seg.dcm", ct.dicom.dataset.SOPInstanceUID)
    assert seg.get_segment_numbers() == [1]
    assert seg.get_segment_description(1).segment_label == "Skeletal muscle"
    np.testing.assert_array_equal(pixels[:, :, 0], mask == Measured.MUSCLE)


def test_dicom_seg_needs_dicom_and_a_non_empty_mask(tmp_path):
    ct = ct_small()
    kwargs: dict[str, Any] = {"algorithm_name": "a", "algorithm_version": "1", "software_version": "0"}
    with pytest.raises(ValueError, match="no muscle, IMAT, SAT or VAT"):
        write_dicom_seg(np.zeros((128, 128), np.uint8), ct, tmp_path / "seg.dcm", **kwargs)
    ct.dicom = None
    with pytest.raises(ValueError, match="DICOM source"):
        write_dicom_seg(measured_labels(), ct, tmp_path / "seg.dcm", **kwargs)
    assert not (tmp_path / "seg.dcm").exists()
