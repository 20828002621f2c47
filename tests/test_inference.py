"""Inference protocols: default == pipeline, multi-scale/flip fusion, mmseg sliding window, batching."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import pipeline

from segret_hf import SegRetImageProcessor
from segret_hf.inference import (
    InferenceProtocol,
    SegmentationInferencer,
    default_stride,
    image_size,
    parse_hw,
    scaled_size,
    window_positions,
)

from helpers import save_model_folder

NUM_LABELS = 5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_model_folder(tmp_path_factory.mktemp("model"), {i: f"LABEL_{i}" for i in range(NUM_LABELS)})


def _image(height: int, width: int, seed: int) -> PIL.Image.Image:
    rng = np.random.RandomState(seed)
    # Smooth structure (not pure noise) so predictions form regions.
    base = rng.randint(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return PIL.Image.fromarray(base).resize((width, height), PIL.Image.BILINEAR)


@pytest.fixture(scope="module")
def inferencer(model_dir: str) -> SegmentationInferencer:
    return SegmentationInferencer.from_pretrained(model_dir, batch_size=2, device="cpu")


def test_default_prediction_equals_pipeline_masks(model_dir: str, inferencer: SegmentationInferencer) -> None:
    segmenter = pipeline("image-segmentation", model=model_dir, trust_remote_code=False, device="cpu")
    label2id = {name: index for index, name in segmenter.model.config.id2label.items()}
    images = [_image(40, 56, 0), _image(30, 70, 1)]  # both resized by the processor (short side 32)
    for image, prediction in zip(images, inferencer.predict(images)):
        from_pipeline = torch.full(prediction.shape, -1)
        for segment in segmenter(image):
            from_pipeline[torch.from_numpy(np.array(segment["mask"]) > 0)] = label2id[segment["label"]]
        assert torch.equal(from_pipeline, prediction)
    assert len(torch.unique(prediction)) > 1


def test_mixed_sizes_in_a_batch_equal_one_by_one(inferencer: SegmentationInferencer) -> None:
    images = [_image(40, 56, 0), _image(30, 70, 1), _image(40, 56, 2)]
    together = inferencer.predict(images)
    assert [tuple(p.shape) for p in together] == [(40, 56), (30, 70), (40, 56)]
    for image, prediction in zip(images, together):
        assert torch.equal(inferencer.predict([image])[0], prediction)


def test_one_scale_without_flip_equals_single_scale(model_dir: str, inferencer: SegmentationInferencer) -> None:
    explicit = SegmentationInferencer.from_pretrained(model_dir, InferenceProtocol(scales=(1.0,), flip=False))
    image = _image(40, 56, 3)
    torch.testing.assert_close(explicit.predict_probabilities([image])[0], inferencer.predict_probabilities([image])[0])


def test_flip_is_undone_and_scales_average_probabilities(model_dir: str) -> None:
    protocol = InferenceProtocol(scales=(0.75, 1.0, 1.5), flip=True)
    multi = SegmentationInferencer.from_pretrained(model_dir, protocol, batch_size=4)
    image = _image(40, 56, 4)
    probabilities = multi.predict_probabilities([image])[0]
    assert probabilities.shape == (NUM_LABELS, 40, 56)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(40, 56))
    # Flipping back makes the fused result equivariant: predicting the mirrored image mirrors the output.
    mirrored = multi.predict_probabilities([image.transpose(PIL.Image.FLIP_LEFT_RIGHT)])[0]
    torch.testing.assert_close(mirrored, probabilities.flip(-1), atol=1e-5, rtol=1e-4)


def test_one_window_covering_the_image_equals_whole_image(model_dir: str, inferencer: SegmentationInferencer) -> None:
    image = _image(32, 48, 5)  # short side already 32: the processor keeps the size
    window = SegmentationInferencer.from_pretrained(model_dir, InferenceProtocol(window=(32, 48), stride=(16, 16)))
    torch.testing.assert_close(
        window.predict_probabilities([image])[0], inferencer.predict_probabilities([image])[0], atol=1e-6, rtol=1e-5
    )


def test_overlapping_and_padded_windows(model_dir: str) -> None:
    image = _image(40, 56, 6)  # resized to 32 x 45
    overlapping = InferenceProtocol(window=(24, 24), stride=(16, 16))
    larger_than_image = InferenceProtocol(window=(64, 64), stride=(32, 32))
    for protocol in (overlapping, larger_than_image):
        slide = SegmentationInferencer.from_pretrained(model_dir, protocol, batch_size=3)
        probabilities = slide.predict_probabilities([image])[0]
        assert probabilities.shape == (NUM_LABELS, 40, 56)
        torch.testing.assert_close(probabilities.sum(0), torch.ones(40, 56))


@pytest.fixture(scope="module")
def aligned_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same model saved with mmseg's AlignedResize test protocol (size_divisor 32)."""
    folder = save_model_folder(tmp_path_factory.mktemp("aligned"), {i: f"LABEL_{i}" for i in range(NUM_LABELS)})
    SegRetImageProcessor(size={"shortest_edge": 32}, size_divisor=32).save_pretrained(folder)
    return folder


def _view_sizes(inferencer: SegmentationInferencer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records the `(height, width)` of every view the inferencer runs (whole image or before sliding)."""
    sizes = []
    original = inferencer._view_logits

    def recording(views: list[torch.Tensor]):
        sizes.extend(tuple(view.shape[-2:]) for view in views)
        return original(views)

    monkeypatch.setattr(inferencer, "_view_logits", recording)
    return sizes


def test_multi_scale_views_are_aligned_per_scale(model_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = InferenceProtocol(scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)
    multi = SegmentationInferencer.from_pretrained(
        model_dir, protocol, batch_size=4, image_processor_kwargs={"size_divisor": 32}
    )
    sizes = _view_sizes(multi, monkeypatch)
    probabilities = multi.predict_probabilities([_image(40, 56, 8)])[0]
    assert probabilities.shape == (NUM_LABELS, 40, 56)
    # Each ratio scales `size`, the image is resized keep-ratio, then that size is aligned (not the other way).
    keep_ratio = [
        SegRetImageProcessor.get_output_size(40, 56, scaled_size({"shortest_edge": 32}, ratio))
        for ratio in protocol.scales
    ]
    expected = [SegRetImageProcessor.get_aligned_size(*hw, 32) for hw in keep_ratio]
    assert sorted(sizes) == sorted(expected * 2)  # plus the flipped copies
    assert all(height % 32 == 0 and width % 32 == 0 for height, width in sizes)
    assert (32, 45) in keep_ratio and (32, 64) in expected


def test_sliding_windows_run_over_the_aligned_image(aligned_model_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = InferenceProtocol(window=(24, 24), stride=(16, 16))
    slide = SegmentationInferencer.from_pretrained(aligned_model_dir, protocol)
    sizes = _view_sizes(slide, monkeypatch)
    probabilities = slide.predict_probabilities([_image(40, 56, 9)])[0]
    assert sizes == [(32, 64)]  # 40x56 -> 32x45 (short side 32) -> aligned to 32x64, then windows
    assert probabilities.shape == (NUM_LABELS, 40, 56)


def test_pipeline_with_aligned_resize_returns_masks_at_the_original_size(aligned_model_dir: str) -> None:
    segmenter = pipeline("image-segmentation", model=aligned_model_dir, device="cpu")
    assert segmenter.image_processor.size_divisor == 32
    label2id = {name: index for index, name in segmenter.model.config.id2label.items()}
    image = _image(40, 56, 10)
    (prediction,) = SegmentationInferencer.from_pretrained(aligned_model_dir).predict([image])
    from_pipeline = torch.full(prediction.shape, -1)
    for segment in segmenter(image):
        assert segment["mask"].size == image.size
        from_pipeline[torch.from_numpy(np.array(segment["mask"]) > 0)] = label2id[segment["label"]]
    assert torch.equal(from_pipeline, prediction)


def test_window_positions_follow_mmseg() -> None:
    assert window_positions(48, 32, 16) == [(0, 32), (16, 48)]
    assert window_positions(50, 32, 20) == [(0, 32), (18, 50)]  # last window aligned to the border
    assert window_positions(32, 32, 21) == [(0, 32)]
    assert default_stride((512, 1024)) == (341, 682)


def test_scaled_size_truncates_like_mmseg() -> None:
    ade = {"shortest_edge": 512, "longest_edge": 2048}
    assert scaled_size(ade, 0.75) == {"shortest_edge": 384, "longest_edge": 1536}
    fixed = SegRetImageProcessor(size={"height": 512, "width": 1024}).size
    assert scaled_size(fixed, 1.75) == {"height": 896, "width": 1792}
    assert scaled_size({"shortest_edge": 33}, 0.5) == {"shortest_edge": 16}
    with pytest.raises(ValueError, match="max_pixels"):
        scaled_size({"max_pixels": 1000}, 0.5)


def test_reduced_precision_runs(model_dir: str) -> None:
    half = SegmentationInferencer.from_pretrained(model_dir, dtype="bfloat16")
    probabilities = half.predict_probabilities([_image(40, 56, 7)])[0]
    assert probabilities.dtype == torch.float32 and probabilities.shape == (NUM_LABELS, 40, 56)
    assert next(half.model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scales": ()}, "scales"),
        ({"scales": (1.0, -0.5)}, "scales"),
        ({"window": (32, 32)}, "window and stride go together"),
        ({"window": (32, 32), "stride": (48, 16)}, "larger than window"),
    ],
)
def test_protocol_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InferenceProtocol(**kwargs)


def test_parse_hw_and_image_size() -> None:
    assert parse_hw("512") == (512, 512)
    assert parse_hw("512x1024") == (512, 1024)
    assert parse_hw("512,1024") == (512, 1024)
    with pytest.raises(ValueError, match="HxW"):
        parse_hw("big")
    assert image_size(np.zeros((3, 10, 20))) == (10, 20)
    assert image_size(np.zeros((10, 20, 3))) == (10, 20)
    assert image_size(PIL.Image.new("RGB", (20, 10))) == (10, 20)
