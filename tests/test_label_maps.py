"""Label-map decoding, train-id conversion and `--id2label` specs, shared by training, evaluation and conversion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from segret_hf.data.label_maps import LabelMapError, LabelMapping, label_map_array, parse_id2label_spec
from segret_hf.data.presets import get_preset


def test_label_values_of_every_accepted_form_decode_to_int64_maps() -> None:
    ids = np.array([[0, 1, 2], [3, 255, 1]])
    values = [
        PIL.Image.fromarray(ids.astype(np.uint8)),  # L
        PIL.Image.fromarray(ids.astype(np.uint16)),  # I;16
        PIL.Image.fromarray(ids.astype(np.int32)),  # I
        ids.tolist(),
        ids[..., None].astype(np.uint8),
        ids[None].astype(np.int16),
    ]
    for value in values:
        label = label_map_array(value)
        assert label.dtype == np.int64 and label.tolist() == ids.tolist()


def test_colour_images_and_other_shapes_are_refused_by_name() -> None:
    with pytest.raises(LabelMapError, match=r"^The label of row 4 is a 'RGB' image; .*single-channel"):
        label_map_array(PIL.Image.new("RGB", (3, 2)), "The label of row 4")
    with pytest.raises(LabelMapError, match=r"^the label map has shape \(2, 3, 3\) and dtype uint8"):
        label_map_array(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="dtype float32"):
        label_map_array(np.zeros((2, 3), np.float32))


def test_mapping_for_dataset_follows_flags_then_preset() -> None:
    cityscapes = LabelMapping.for_dataset(19, get_preset("cityscapes"), None)
    assert cityscapes.lookup is not None and cityscapes(np.array([[7, 26, 0]])).tolist() == [[0, 13, 255]]
    with pytest.raises(LabelMapError, match=r"\[0, 255\] for the lookup table"):
        cityscapes(np.array([[256]]))
    assert LabelMapping.for_dataset(150, get_preset("ade20k"), None).reduce
    assert not LabelMapping.for_dataset(150, get_preset("ade20k"), False).reduce
    trusted = LabelMapping.for_dataset(19, get_preset("cityscapes"), None, labels_are_train_ids=True)
    assert trusted.lookup is None and trusted.describe() == "as stored (train ids)"
    assert LabelMapping(3).invalid_values(np.array([0, 2, 3, 255, -1, 3])).tolist() == [-1, 3]


def test_id2label_sources(tmp_path: Path) -> None:
    (tmp_path / "dict.json").write_text(json.dumps({"0": "a", "1": "b"}))
    (tmp_path / "list.json").write_text(json.dumps(["a", "b"]))
    (tmp_path / "gap.json").write_text(json.dumps({"0": "a", "2": "b"}))
    assert parse_id2label_spec(tmp_path / "dict.json") == ({0: "a", 1: "b"}, None)
    assert parse_id2label_spec(tmp_path / "list.json") == ({0: "a", 1: "b"}, None)
    with pytest.raises(ValueError, match="exactly 0..1"):
        parse_id2label_spec(tmp_path / "gap.json")
    id2label, dataset = parse_id2label_spec("COCO_Stuff")
    assert dataset == "coco-stuff" and len(id2label) == 171
    with pytest.raises(ValueError, match="neither an existing JSON file nor a built-in label set"):
        parse_id2label_spec("pascal")
