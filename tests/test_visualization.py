"""Palettes, overlays, legends, side-by-side strips, and the segment_image example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from segret_hf.data.label_sets import ADE20K, CITYSCAPES, COCO_STUFF, generate_palette
from segret_hf.visualization import (
    classes_by_area,
    colorize,
    draw_legend,
    overlay,
    palette_for_labels,
    render_segmentation,
    side_by_side,
)

from helpers import load_script, save_model_folder

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "segment_image.py"


@pytest.mark.parametrize("label_set", [ADE20K, CITYSCAPES, COCO_STUFF])
def test_dataset_palette_is_recognised_from_class_names(label_set) -> None:
    id2label = dict(label_set.id2label)
    id2label[0] = id2label[0].upper() + " "  # Hub configs differ in case and spacing
    palette, source = palette_for_labels(id2label)
    assert source == label_set.name and palette == list(label_set.palette)


def test_unknown_classes_get_the_generic_palette() -> None:
    palette, source = palette_for_labels({0: "cat", 1: "dog", 2: "grass"})
    assert source is None and palette == generate_palette(3)
    renamed = {index: f"LABEL_{index}" for index in range(len(ADE20K.class_names))}
    assert palette_for_labels(renamed)[1] is None


def test_colorize_and_overlay() -> None:
    palette = [(255, 0, 0), (0, 255, 0)]
    segmentation = np.array([[0, 1], [255, 7]])
    assert colorize(segmentation, palette).tolist() == [[[255, 0, 0], [0, 255, 0]], [[0, 0, 0], [0, 0, 0]]]
    image = np.full((2, 2, 3), 100, np.uint8)
    assert np.array(overlay(image, segmentation, palette, alpha=0.0)).tolist() == image.tolist()
    blended = np.array(overlay(image, torch.tensor(segmentation), palette, alpha=1.0))
    assert blended[0, 0].tolist() == [255, 0, 0] and blended[1, 0].tolist() == [100, 100, 100]  # ignored: kept
    with pytest.raises(ValueError, match="Image is"):
        overlay(np.zeros((3, 2, 3), np.uint8), segmentation, palette)


def test_classes_by_area_ignores_255() -> None:
    assert classes_by_area(np.array([[2, 2, 2], [1, 255, 255]])) == [(2, 0.75), (1, 0.25)]


def test_render_keeps_size_and_legend_summarises_overflow() -> None:
    image = PIL.Image.new("RGB", (64, 48), (90, 90, 90))
    segmentation = np.arange(48 * 64).reshape(48, 64) % 150
    picture = render_segmentation(image, segmentation, ADE20K.id2label)
    assert picture.size == (64, 48) and picture.mode == "RGB"
    legend = draw_legend(image, [("wall", (255, 0, 0))])
    assert legend.size == image.size and np.array(legend)[6, 6].tolist() != [90, 90, 90]


def test_side_by_side_strip() -> None:
    image = np.zeros((4, 5, 3), np.uint8)
    strip = side_by_side(image, np.ones((4, 5), int), np.zeros((4, 5), int), [(1, 2, 3), (4, 5, 6)])
    assert strip.size == (15, 4)
    assert np.array(strip)[0, 5].tolist() == [4, 5, 6] and np.array(strip)[0, 10].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="same size"):
        side_by_side(image, np.ones((3, 5), int), np.zeros((4, 5), int), [(1, 2, 3)])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_model_folder(tmp_path_factory.mktemp("model"), CITYSCAPES.id2label)


def test_segment_image_writes_overlay_with_input_size(
    tmp_path: Path, model_dir: str, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "photo.png"
    PIL.Image.fromarray(np.random.RandomState(0).randint(0, 255, (45, 61, 3), dtype=np.uint8)).save(source)
    example = load_script(EXAMPLE)
    assert example.main([str(source), "--model", model_dir]) == 0
    written = PIL.Image.open(tmp_path / "photo_segmented.png")
    assert written.size == (61, 45)
    assert "cityscapes palette" in capsys.readouterr().out
    assert example.main([str(source), "--model", model_dir, "--output", str(tmp_path / "o.png"), "--flip"]) == 0
    assert PIL.Image.open(tmp_path / "o.png").size == (61, 45)


def test_segment_image_without_model_says_what_to_pass(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_script(EXAMPLE).main(["photo.png"])
    assert exit_info.value.code == 2
    assert "pass --model" in capsys.readouterr().err
