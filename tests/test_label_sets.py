"""Dataset facts: class counts, raw-annotation lookup tables, palettes and presets."""

from __future__ import annotations

import numpy as np
import pytest

from segret_hf.data import (
    DATASET_PRESETS,
    LABEL_SETS,
    generate_palette,
    get_id2label,
    get_label_set,
    get_preset,
    label_lut,
)
from segret_hf.data.label_sets import CITYSCAPES_ID_TO_TRAIN_ID, COCO_STUFF_ID_TO_TRAIN_ID
from segret_hf.data.loading import resolve_columns


@pytest.mark.parametrize(
    ("name", "count", "first", "last"),
    [
        ("ade20k", 150, "wall", "flag"),
        ("cityscapes", 19, "road", "bicycle"),
        ("coco-stuff", 171, "person", "wood"),
        ("coco-stuff-10k", 171, "person", "wood"),
    ],
)
def test_class_counts_and_order(name: str, count: int, first: str, last: str) -> None:
    label_set = get_label_set(name)
    assert label_set.num_labels == count
    assert len(label_set.palette) == count
    assert len(set(label_set.class_names)) == count
    id2label = get_id2label(name)
    assert id2label[0] == first and id2label[count - 1] == last
    assert label_set.label2id[first] == 0
    assert all(len(color) == 3 and all(0 <= c <= 255 for c in color) for color in label_set.palette)


def test_ade20k_names_match_hub_checkpoints() -> None:
    id2label = get_id2label("ade20k")
    assert id2label[7] == "bed "  # the trailing space is part of the standard list
    assert (id2label[12], id2label[20], id2label[136], id2label[148]) == ("person", "car", "traffic light", "clock")


def test_cityscapes_train_classes_and_palette() -> None:
    label_set = get_label_set("cityscapes")
    assert label_set.class_names == (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
        "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
        "motorcycle", "bicycle",
    )  # fmt: skip
    assert label_set.palette[0] == (128, 64, 128)
    assert label_set.palette[13] == (0, 0, 142)
    assert label_set.palette[18] == (119, 11, 32)


def test_cityscapes_id_to_train_id() -> None:
    assert set(CITYSCAPES_ID_TO_TRAIN_ID) == set(range(34)) | {-1}
    lut = label_lut("cityscapes")
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    expected = {0: 255, 1: 255, 6: 255, 7: 0, 8: 1, 9: 255, 11: 2, 17: 5, 18: 255, 23: 10, 24: 11, 26: 13, 29: 255,
                30: 255, 31: 16, 33: 18, 34: 255, 255: 255}  # fmt: skip
    for label_id, train_id in expected.items():
        assert lut[label_id] == train_id, label_id
    assert CITYSCAPES_ID_TO_TRAIN_ID[-1] == 255  # license plate
    # Every train id 0..18 is produced by exactly one label id.
    train_ids = [t for t in CITYSCAPES_ID_TO_TRAIN_ID.values() if t != 255]
    assert sorted(train_ids) == list(range(19))


def test_coco_stuff_164k_lut() -> None:
    lut = label_lut("coco-stuff")
    assert lut[0] == 0  # person
    assert lut[11] == 255  # 0-based id of COCO's unused id 12 ("street sign")
    assert lut[12] == 11  # stop sign
    assert lut[90] == 255 and lut[91] == 80  # first stuff class: banner
    assert lut[181] == 170  # wood
    assert lut[182] == 255 and lut[255] == 255
    assert len(COCO_STUFF_ID_TO_TRAIN_ID) == 171
    assert sorted(COCO_STUFF_ID_TO_TRAIN_ID.values()) == list(range(171))
    assert int((lut[:182] == 255).sum()) == 11


def test_coco_stuff_10k_lut_is_one_based() -> None:
    lut = label_lut("coco-stuff-10k")
    assert lut[0] == 255  # unlabeled
    assert lut[1] == 0  # person
    assert lut[12] == 255  # unused COCO id 12
    assert lut[13] == 11  # stop sign
    assert lut[182] == 170
    np.testing.assert_array_equal(lut[1:183], label_lut("coco-stuff")[0:182])


def test_ade20k_lut_equals_reduce_labels() -> None:
    raw = np.arange(256, dtype=np.uint8)
    reduced = raw.copy()
    reduced[reduced == 0] = 255
    reduced = reduced - 1
    reduced[reduced == 254] = 255
    np.testing.assert_array_equal(label_lut("ade20k")[raw], reduced)
    assert label_lut("ade20k")[1] == 0 and label_lut("ade20k")[150] == 149


def test_lut_remaps_an_annotation_and_is_a_copy() -> None:
    annotation = np.array([[7, 26], [0, 33]], dtype=np.uint8)
    np.testing.assert_array_equal(label_lut("cityscapes")[annotation], [[0, 13], [255, 18]])
    lut = label_lut("cityscapes")
    lut[:] = 0
    assert label_lut("cityscapes")[0] == 255


@pytest.mark.parametrize("alias", ["coco-stuff", "coco_stuff", "cocostuff", "COCO-Stuff", "coco-stuff-164k"])
def test_coco_stuff_aliases(alias: str) -> None:
    assert get_label_set(alias) is LABEL_SETS["coco-stuff"]


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="ade20k.*cityscapes.*coco-stuff"):
        get_label_set("pascal-voc")


def test_generate_palette_is_deterministic_and_distinct() -> None:
    palette = generate_palette(1000)
    assert palette == generate_palette(1000)
    assert len(palette) == 1000 and len(set(palette)) == 1000
    assert palette[:10] == generate_palette(10)
    assert generate_palette(0) == []
    with pytest.raises(ValueError):
        generate_palette(-1)


def test_presets_hold_dataset_facts_and_recipes() -> None:
    ade, cityscapes, coco = (DATASET_PRESETS[name] for name in ("ade20k", "cityscapes", "coco-stuff"))
    assert (ade.do_reduce_labels, cityscapes.do_reduce_labels, coco.do_reduce_labels) == (True, False, False)
    assert (ade.num_labels, cityscapes.num_labels, coco.num_labels) == (150, 19, 171)
    assert (ade.test_size_divisor, cityscapes.test_size_divisor, coco.test_size_divisor) == (32, None, 32)
    for preset in (ade, cityscapes, coco):
        assert set(preset.recipes) == {"tiny", "small", "base", "large"}
        assert preset.recipe(None) is preset.recipe("tiny") is preset.recipe("TINY")


def test_preset_lookup() -> None:
    assert get_preset("coco_stuff") is DATASET_PRESETS["coco-stuff"]
    ten_k = get_preset("coco-stuff-10k")
    assert ten_k.label_set is LABEL_SETS["coco-stuff-10k"] and ten_k.recipes is DATASET_PRESETS["coco-stuff"].recipes


def test_resolve_columns() -> None:
    def columns(preset: str, names: list[str]) -> tuple[str, str]:
        return resolve_columns(names, preset=get_preset(preset))

    assert columns("ade20k", ["image", "annotation", "scene_category"]) == ("image", "annotation")
    assert columns("ade20k", ["image", "label", "annotation"]) == ("image", "annotation")
    assert columns("cityscapes", ["image", "semantic_segmentation"]) == ("image", "semantic_segmentation")
    assert columns("coco-stuff", ["label", "image"]) == ("image", "label")
    with pytest.raises(ValueError, match="Found no label column"):
        columns("ade20k", ["image", "caption"])
