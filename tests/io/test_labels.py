"""The label table: values, colours and codes shared by overlay, SEG, SR and labels.json."""

from __future__ import annotations

import json

from lsmseg.io.labels import (
    LABEL_BY_KEY,
    LABEL_BY_VALUE,
    LABELS,
    code,
    describe,
    label_table,
    rgb255,
    write_label_table,
)
from lsmseg.keys import Measured


def test_one_label_per_measured_value_with_distinct_colours() -> None:
    assert sorted(int(lb.value) for lb in LABELS) == [int(m) for m in Measured if m != Measured.BACKGROUND]
    assert LABEL_BY_KEY["imat"].value == Measured.IMAT == 4 and LABEL_BY_VALUE[3].key == "muscle"
    assert len({rgb255(lb) for lb in LABELS}) == len(LABELS)
    assert rgb255(LABEL_BY_KEY["muscle"]) == (230, 26, 26)


def test_codes_are_snomed_ct() -> None:
    muscle, imat = LABEL_BY_KEY["muscle"], LABEL_BY_KEY["imat"]
    assert code(muscle.type).value == "127954009" and code(muscle.type).scheme_designator == "SCT"
    assert (imat.type[0], imat.region) == ("55603005", ("127954009", "SCT", "Skeletal muscle"))
    assert LABEL_BY_KEY["sat"].region[0] == "71966008"  # type: ignore[index]


def test_descriptions_say_which_pixels() -> None:
    vat = LABEL_BY_KEY["vat"]
    assert describe(vat, True, (-150.0, -50.0)) == "visceral compartment with -150..-50 HU"
    assert "-190..-30 HU" in describe(LABEL_BY_KEY["sat"], True)
    assert describe(vat, False) == "Visceral adipose tissue: model region, no HU range applied"


def test_labels_json_names_both_masks(tmp_path) -> None:
    path = write_label_table(tmp_path / "labels.json", True, (-150.0, -50.0))
    table = json.loads(path.read_text())
    measured = table["mask.nii.gz"]
    assert measured["refined"] is True
    assert [e["value"] for e in measured["labels"]] == [3, 4, 1, 2]
    assert measured["labels"][1] | {"description": None} == {
        "value": 4,
        "key": "imat",
        "name": "Intermuscular adipose tissue",
        "description": None,
        "rgb": [26, 204, 26],
        "category": ["85756007", "SCT", "Tissue"],
        "type": ["55603005", "SCT", "Fat"],
        "region": ["127954009", "SCT", "Skeletal muscle"],
    }
    assert [e["value"] for e in table["mask_model.nii.gz"]["labels"]] == [3, 1, 2]  # no IMAT
    assert "voxel" in table["array_order"]


def test_unrefined_table_has_no_imat() -> None:
    table = label_table(False, None)
    assert table["mask.nii.gz"]["refined"] is False
    assert 4 not in [e["value"] for e in table["mask.nii.gz"]["labels"]]
