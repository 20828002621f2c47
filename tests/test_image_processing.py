"""Tests for SegRetImageProcessor (fast, offline, deterministic: small synthetic images only)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import SegformerImageProcessor
from transformers.modeling_outputs import SemanticSegmenterOutput

from segret_hf.image_processing_segret import SegRetImageProcessor

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# One 8-bit level after normalisation, the worst case over the three channels.
ONE_LEVEL = 1.0 / 255.0 / float(STD.min())


def rgb_array(height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def label_array(height=48, width=64, seed=0, high=151):
    return np.random.default_rng(seed + 100).integers(0, high, size=(height, width), dtype=np.uint8)


def normalised(array_hwc_uint8):
    """Reference: rescale by 1/255 and ImageNet-normalise, returned channels-first."""
    x = (array_hwc_uint8.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


@pytest.fixture
def processor():
    return SegRetImageProcessor()


# ---------------------------------------------------------------------------------------------------
# Defaults, shapes, dtypes
# ---------------------------------------------------------------------------------------------------


def test_defaults(processor):
    assert dict(processor.size) == {"height": 512, "width": 512}
    assert processor.do_resize and processor.do_rescale and processor.do_normalize and processor.do_convert_rgb
    assert not processor.do_reduce_labels
    assert processor.rescale_factor == pytest.approx(1 / 255)
    assert tuple(processor.image_mean) == pytest.approx(tuple(MEAN))
    assert tuple(processor.image_std) == pytest.approx(tuple(STD))
    assert processor.model_input_names == ["pixel_values"]


def test_single_image_shape_and_dtype(processor):
    out = processor(Image.fromarray(rgb_array()), return_tensors="pt")
    assert set(out.keys()) == {"pixel_values"}
    assert out["pixel_values"].shape == (1, 3, 512, 512)
    assert out["pixel_values"].dtype == torch.float32


def test_batch_of_different_sizes_with_maps(processor):
    images = [Image.fromarray(rgb_array(48, 64)), Image.fromarray(rgb_array(70, 30, seed=1))]
    maps = [Image.fromarray(label_array(48, 64)), Image.fromarray(label_array(70, 30, seed=1))]
    out = processor(images, segmentation_maps=maps, size={"height": 32, "width": 40}, return_tensors="pt")
    assert out["pixel_values"].shape == (2, 3, 32, 40)
    assert out["pixel_values"].dtype == torch.float32
    assert out["labels"].shape == (2, 32, 40)
    assert out["labels"].dtype == torch.int64


def test_without_return_tensors_gives_lists(processor):
    images = [rgb_array(48, 64), rgb_array(30, 20, seed=1)]
    out = processor(images, size={"shortest_edge": 24})
    shapes = [tuple(x.shape) for x in out["pixel_values"]]
    assert shapes == [(3, 24, 32), (3, 36, 24)]


def test_pipeline_style_call(processor):
    """The image-segmentation pipeline calls `processor(images=[pil], return_tensors="pt")`."""
    out = processor(images=[Image.fromarray(rgb_array())], return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 512, 512)


# ---------------------------------------------------------------------------------------------------
# Normalisation numbers
# ---------------------------------------------------------------------------------------------------


def test_normalisation_on_hand_made_image(processor):
    image = np.zeros((6, 8, 3), dtype=np.uint8)
    image[:3, :4] = (255, 0, 0)
    image[:3, 4:] = (0, 255, 0)
    image[3:, :4] = (0, 0, 255)
    image[3:, 4:] = (128, 64, 32)
    out = processor(Image.fromarray(image), do_resize=False, return_tensors="pt")["pixel_values"][0]
    # Hand-computed corners: (v / 255 - mean) / std.
    assert out[:, 0, 0].tolist() == pytest.approx([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], abs=1e-5)
    assert out[:, 0, 7].tolist() == pytest.approx([-0.485 / 0.229, (1 - 0.456) / 0.224, -0.406 / 0.225], abs=1e-5)
    assert out[:, 5, 0].tolist() == pytest.approx([-0.485 / 0.229, -0.456 / 0.224, (1 - 0.406) / 0.225], abs=1e-5)
    expected = [(128 / 255 - 0.485) / 0.229, (64 / 255 - 0.456) / 0.224, (32 / 255 - 0.406) / 0.225]
    assert out[:, 5, 7].tolist() == pytest.approx(expected, abs=1e-5)
    torch.testing.assert_close(out, normalised(image), atol=1e-5, rtol=0)


def test_resize_to_same_size_is_identity_before_normalisation(processor):
    image = rgb_array(48, 64)
    out = processor(image, size={"height": 48, "width": 64}, return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(out, normalised(image), atol=1e-5, rtol=0)


def test_rescale_and_normalise_can_be_disabled(processor):
    image = rgb_array(48, 64)
    out = processor(image, do_resize=False, do_normalize=False, do_rescale=False, return_tensors="pt")
    torch.testing.assert_close(out["pixel_values"][0], torch.from_numpy(image).permute(2, 0, 1).float())


def test_close_to_segformer_processor_with_antialias():
    """With antialias=True the output matches SegFormer's processor up to its uint8 resize rounding."""
    image = Image.fromarray(rgb_array(100, 140))
    seg_map = Image.fromarray(label_array(100, 140))
    ours = SegRetImageProcessor(antialias=True, do_reduce_labels=True)(
        image, segmentation_maps=seg_map, return_tensors="pt"
    )
    ref = SegformerImageProcessor(do_reduce_labels=True)(image, segmentation_maps=seg_map, return_tensors="pt")
    torch.testing.assert_close(ours["pixel_values"], ref["pixel_values"], atol=ONE_LEVEL + 1e-4, rtol=0)
    torch.testing.assert_close(ours["labels"], ref["labels"])


# ---------------------------------------------------------------------------------------------------
# Resize modes
# ---------------------------------------------------------------------------------------------------


def test_shortest_edge_keeps_aspect_ratio(processor):
    image = rgb_array(300, 400)
    out = processor(image, segmentation_maps=label_array(300, 400), size={"shortest_edge": 512}, return_tensors="pt")
    # mmcv keep-ratio rule: 400 * 512 / 300 = 682.67 -> 683.
    assert out["pixel_values"].shape == (1, 3, 512, 683)
    assert out["labels"].shape == (1, 512, 683)
    height, width = out["pixel_values"].shape[-2:]
    assert width / height == pytest.approx(400 / 300, rel=2e-3)

    portrait = processor(rgb_array(400, 300), size={"shortest_edge": 512}, return_tensors="pt")["pixel_values"]
    assert portrait.shape == (1, 3, 683, 512)


def test_shortest_edge_with_longest_edge_cap(processor):
    size = {"shortest_edge": 512, "longest_edge": 2048}
    # Long edge would be 5120 -> capped at 2048, short edge shrinks accordingly (100 * 2.048 = 204.8 -> 205).
    out = processor(rgb_array(100, 1000), size=size, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 205, 2048)
    # Not capped when the long edge fits (ADE20K-like 512x683 image stays 512x683).
    out = processor(rgb_array(512, 683), size=size, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 512, 683)


def test_longest_edge_and_max_height_width(processor):
    out = processor(rgb_array(100, 200), size={"longest_edge": 50}, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 25, 50)
    out = processor(rgb_array(100, 200), size={"max_height": 40, "max_width": 100}, return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 40, 80)


def test_get_output_size_matches_mmcv_rule():
    get = SegRetImageProcessor.get_output_size
    assert get(512, 683, {"shortest_edge": 512, "longest_edge": 2048}) == (512, 683)
    assert get(1024, 2048, {"shortest_edge": 1024, "longest_edge": 2048}) == (1024, 2048)
    assert get(375, 500, {"shortest_edge": 512}) == (512, 683)
    assert get(10, 20, {"height": 7, "width": 9}) == (7, 9)
    with pytest.raises(ValueError, match="Unsupported size"):
        get(10, 20, {})


def test_int_size_means_square(processor):
    out = processor(rgb_array(), size=64, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 64, 64)


# ---------------------------------------------------------------------------------------------------
# Aligned resize (size_divisor, mmseg AlignedResize)
# ---------------------------------------------------------------------------------------------------

ADE20K_SIZE = {"shortest_edge": 512, "longest_edge": 2048}


def test_aligned_resize_of_an_ade20k_image_and_back():
    """683x512 (w x h) is fed as 704x512 and its prediction comes back at 683x512."""
    processor = SegRetImageProcessor(size=ADE20K_SIZE, size_divisor=32)
    image, seg_map = Image.fromarray(rgb_array(512, 683)), Image.fromarray(label_array(512, 683))
    out = processor(image, segmentation_maps=seg_map, return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 512, 704)
    assert out["labels"].shape == (1, 512, 704)
    assert set(out["labels"].unique().tolist()) <= set(np.unique(label_array(512, 683)).tolist())  # nearest
    logits = torch.randn(1, 5, 512 // 4, 704 // 4, generator=torch.Generator().manual_seed(0))
    (segmentation,) = processor.post_process_semantic_segmentation(logits, target_sizes=[image.size[::-1]])
    assert segmentation.shape == (512, 683)


@pytest.mark.parametrize(
    "width, height, expected",
    [(512, 384, (512, 704)), (640, 480, (512, 704)), (640, 427, (512, 768)), (3000, 700, (480, 2048))],
)
def test_aligned_sizes_follow_mmseg(width, height, expected):
    processor = SegRetImageProcessor(size=ADE20K_SIZE, size_divisor=32)
    out = processor(rgb_array(height, width), do_normalize=False, return_tensors="pt")["pixel_values"]
    assert tuple(out.shape[-2:]) == expected


def test_get_aligned_size_rounds_each_side_up():
    assert SegRetImageProcessor.get_aligned_size(512, 683, 32) == (512, 704)
    assert SegRetImageProcessor.get_aligned_size(478, 2048, 32) == (480, 2048)
    assert SegRetImageProcessor.get_aligned_size(1, 33, 32) == (32, 64)


@pytest.mark.parametrize("antialias", [False, True])
def test_second_resize_is_a_separate_bilinear_interpolation(antialias):
    """Aligned output = bilinear resize of the keep-ratio output to the aligned size, not one direct resize."""
    image = rgb_array(384, 512)
    plain = dict(size=ADE20K_SIZE, antialias=antialias, do_rescale=False, do_normalize=False, return_tensors="pt")
    first = SegRetImageProcessor()(image, **plain)["pixel_values"]
    assert first.shape == (1, 3, 512, 683)
    aligned = SegRetImageProcessor(size_divisor=32)(image, **plain)["pixel_values"]
    reference = F.interpolate(first, size=(512, 704), mode="bilinear", align_corners=False, antialias=antialias)
    torch.testing.assert_close(aligned, reference, atol=1e-4, rtol=0)
    direct = F.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(512, 704), mode="bilinear", align_corners=False
    )
    assert (aligned - direct).abs().max() > 1.0


def test_size_divisor_none_keeps_todays_output_exactly():
    images = [rgb_array(48, 70), rgb_array(50, 33, seed=1)]
    size = {"shortest_edge": 40}
    reference = SegRetImageProcessor(size=size)(images)["pixel_values"]
    for out in (
        SegRetImageProcessor(size=size, size_divisor=None)(images)["pixel_values"],
        SegRetImageProcessor(size=size, size_divisor=32)(images, size_divisor=None)["pixel_values"],
    ):
        assert all(torch.equal(a, b) for a, b in zip(out, reference))


def test_already_aligned_image_is_resized_once():
    image = rgb_array(64, 96)
    aligned = SegRetImageProcessor(size_divisor=32)(image, size={"shortest_edge": 64}, return_tensors="pt")
    plain = SegRetImageProcessor()(image, size={"shortest_edge": 64}, return_tensors="pt")
    assert torch.equal(aligned["pixel_values"], plain["pixel_values"])


def test_aligned_batches():
    """Fixed sizes still stack after alignment; keep-ratio sizes are aligned image by image."""
    processor = SegRetImageProcessor(size_divisor=32)
    images = [rgb_array(48, 64), rgb_array(70, 30, seed=1)]
    maps = [label_array(48, 64), label_array(70, 30, seed=1)]
    out = processor(images, segmentation_maps=maps, size={"height": 40, "width": 70}, return_tensors="pt")
    assert out["pixel_values"].shape == (2, 3, 64, 96) and out["labels"].shape == (2, 64, 96)
    out = processor(images, size={"shortest_edge": 40})
    assert [tuple(x.shape[-2:]) for x in out["pixel_values"]] == [(64, 64), (96, 64)]  # 40x53, 93x40 aligned


@pytest.mark.parametrize("value", [0, -32, 32.0, True, "32"])
def test_bad_size_divisor_is_refused(value):
    with pytest.raises(ValueError, match="size_divisor must be a positive integer"):
        SegRetImageProcessor(size_divisor=value)


# ---------------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------------


def test_reduce_labels_mapping():
    seg_map = np.array([[0, 1, 2, 150], [255, 0, 37, 255]], dtype=np.uint8)
    image = rgb_array(2, 4)
    out = SegRetImageProcessor(do_reduce_labels=True, do_resize=False)(
        image, segmentation_maps=seg_map, return_tensors="pt"
    )
    assert out["labels"][0].tolist() == [[255, 0, 1, 149], [255, 255, 36, 255]]
    # Images are not affected by label reduction.
    plain = SegRetImageProcessor(do_resize=False)(image, return_tensors="pt")
    torch.testing.assert_close(out["pixel_values"], plain["pixel_values"])


def test_reduce_labels_per_call_and_legacy_name(processor):
    seg_map = np.array([[0, 5], [255, 1]], dtype=np.uint8)
    out = processor(rgb_array(2, 2), segmentation_maps=seg_map, do_resize=False, do_reduce_labels=True)
    assert out["labels"][0].tolist() == [[255, 4], [255, 0]]
    assert SegRetImageProcessor(reduce_labels=True).do_reduce_labels is True


def test_labels_resized_with_nearest(processor):
    seg_map = label_array(48, 64, high=5) * 50  # values {0, 50, 100, 150, 200}
    out = processor(rgb_array(48, 64), segmentation_maps=seg_map, size={"height": 37, "width": 91})
    labels = out["labels"][0]
    assert labels.dtype == torch.int64
    assert set(labels.unique().tolist()) <= {0, 50, 100, 150, 200}
    # Upscaling by an integer factor replicates pixels exactly.
    out = processor(rgb_array(48, 64), segmentation_maps=seg_map, size={"height": 96, "width": 128})
    expected = torch.from_numpy(seg_map.astype(np.int64)).repeat_interleave(2, 0).repeat_interleave(2, 1)
    torch.testing.assert_close(out["labels"][0], expected)


def test_segmentation_map_formats_agree(processor):
    seg = label_array(48, 64)
    palette_map = Image.fromarray(seg, mode="L").convert("P")
    palette_map.putpalette(list(range(256)) * 3)
    wide = seg.astype(np.uint16) * 300  # values above 255, as in datasets with many classes
    image = rgb_array(48, 64)
    kwargs = {"size": {"height": 24, "width": 32}, "return_tensors": "pt"}
    ref = processor(image, segmentation_maps=seg, **kwargs)["labels"]
    for seg_map in (
        Image.fromarray(seg, mode="L"),
        palette_map,
        seg.astype(np.int32),
        torch.from_numpy(seg),
        seg[None],  # (1, H, W)
    ):
        torch.testing.assert_close(processor(image, segmentation_maps=seg_map, **kwargs)["labels"], ref)
    wide_ref = processor(image, segmentation_maps=wide, **kwargs)["labels"]
    torch.testing.assert_close(wide_ref, ref * 300)
    wide_pil = Image.fromarray(wide)
    assert wide_pil.mode == "I;16"
    torch.testing.assert_close(processor(image, segmentation_maps=wide_pil, **kwargs)["labels"], ref * 300)


# ---------------------------------------------------------------------------------------------------
# Input kinds
# ---------------------------------------------------------------------------------------------------


def test_numpy_torch_and_pil_agree(processor):
    image = rgb_array(48, 64)
    kwargs = {"size": {"height": 24, "width": 40}, "return_tensors": "pt"}
    ref = processor(Image.fromarray(image), **kwargs)["pixel_values"]
    torch.testing.assert_close(processor(image, **kwargs)["pixel_values"], ref)  # HWC uint8
    chw = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    torch.testing.assert_close(processor(chw, **kwargs)["pixel_values"], ref)  # CHW tensor
    torch.testing.assert_close(processor(image.transpose(2, 0, 1).copy(), **kwargs)["pixel_values"], ref)
    batch = np.stack([image, image])  # 4D NHWC array = batch of two
    assert processor(batch, **kwargs)["pixel_values"].shape == (2, 3, 24, 40)


def test_grayscale_inputs(processor):
    gray = rgb_array(48, 64)[..., 0]
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    ref = processor(rgb, return_tensors="pt")["pixel_values"]
    for image in (Image.fromarray(gray, mode="L"), gray, gray[..., None], torch.from_numpy(gray)[None]):
        out = processor(image, return_tensors="pt")["pixel_values"]
        assert out.shape == (1, 3, 512, 512)
        torch.testing.assert_close(out, ref)


def test_rgba_drops_alpha(processor):
    rgba = np.concatenate([rgb_array(48, 64), np.full((48, 64, 1), 7, dtype=np.uint8)], axis=-1)
    ref = processor(rgba[..., :3], return_tensors="pt")["pixel_values"]
    for image in (Image.fromarray(rgba, mode="RGBA"), rgba, torch.from_numpy(rgba).permute(2, 0, 1)):
        out = processor(image, return_tensors="pt")["pixel_values"]
        assert out.shape == (1, 3, 512, 512)
        torch.testing.assert_close(out, ref)


def test_16bit_equals_8bit_equivalent(processor):
    image8 = rgb_array(48, 64)
    image16 = image8.astype(np.uint16) * 257  # exact 16-bit equivalent: 255 -> 65535
    gray8, gray16 = image8[..., 0], image16[..., 0]
    kwargs = {"size": {"height": 40, "width": 50}, "return_tensors": "pt"}

    ref = processor(image8, **kwargs)["pixel_values"]
    for image in (image16, torch.from_numpy(image16).permute(2, 0, 1)):
        torch.testing.assert_close(processor(image, **kwargs)["pixel_values"], ref, atol=1e-4, rtol=0)

    gray_ref = processor(Image.fromarray(gray8, mode="L"), **kwargs)["pixel_values"]
    pil16, pil32 = Image.fromarray(gray16), Image.fromarray(gray16.astype(np.int32))
    assert (pil16.mode, pil32.mode) == ("I;16", "I")
    for image in (pil16, pil32, gray16):
        torch.testing.assert_close(processor(image, **kwargs)["pixel_values"], gray_ref, atol=1e-4, rtol=0)


def test_16bit_full_precision_within_rounding_of_8bit(processor):
    image16 = np.random.default_rng(3).integers(0, 65536, size=(48, 64, 3), dtype=np.uint16)
    image8 = np.round(image16 / 257.0).astype(np.uint8)
    out16 = processor(image16, do_resize=False, return_tensors="pt")["pixel_values"]
    out8 = processor(image8, do_resize=False, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(out16, out8, atol=0.5 * ONE_LEVEL + 1e-4, rtol=0)
    # White stays white, i.e. 16-bit data is divided by 65535, not 255.
    white = processor(np.full((8, 8, 3), 65535, dtype=np.uint16), do_resize=False, return_tensors="pt")
    expected = torch.from_numpy((1 - MEAN) / STD)
    torch.testing.assert_close(white["pixel_values"][0, :, 0, 0], expected, atol=1e-5, rtol=0)


def test_mixed_8bit_and_16bit_batch(processor):
    image8 = rgb_array(48, 64)
    out = processor([image8, image8.astype(np.uint16) * 257], size={"height": 32, "width": 32}, return_tensors="pt")
    torch.testing.assert_close(out["pixel_values"][0], out["pixel_values"][1], atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------------
# Post-processing
# ---------------------------------------------------------------------------------------------------


def test_post_process_without_target_sizes(processor):
    logits = torch.randn(2, 5, 8, 10, generator=torch.Generator().manual_seed(0))
    maps = processor.post_process_semantic_segmentation(SemanticSegmenterOutput(logits=logits))
    assert len(maps) == 2
    for i in range(2):
        assert maps[i].shape == (8, 10)
        assert maps[i].dtype == torch.int64
        torch.testing.assert_close(maps[i], logits[i].argmax(0))
    # A bare logits tensor works too.
    torch.testing.assert_close(processor.post_process_semantic_segmentation(logits)[1], maps[1])


def test_post_process_with_target_sizes(processor):
    logits = torch.randn(2, 5, 8, 10, generator=torch.Generator().manual_seed(1))
    target_sizes = [(31, 47), (8, 10)]
    maps = processor.post_process_semantic_segmentation(SemanticSegmenterOutput(logits=logits), target_sizes)
    assert [tuple(m.shape) for m in maps] == target_sizes
    expected = F.interpolate(logits[:1], size=(31, 47), mode="bilinear", align_corners=False)[0].argmax(0)
    torch.testing.assert_close(maps[0], expected)
    torch.testing.assert_close(maps[1], logits[1].argmax(0))
    as_tensor = processor.post_process_semantic_segmentation(
        SemanticSegmenterOutput(logits=logits), torch.tensor(target_sizes)
    )
    torch.testing.assert_close(as_tensor[0], maps[0])


def test_post_process_scores(processor):
    logits = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    (result,) = processor.post_process_semantic_segmentation(
        SemanticSegmenterOutput(logits=logits), target_sizes=[(12, 9)], return_segmentation_scores=True
    )
    assert result["segmentation"].shape == (12, 9)
    assert result["segmentation_scores"].shape == (4, 12, 9)
    torch.testing.assert_close(result["segmentation"], result["segmentation_scores"].argmax(0))
    (plain,) = processor.post_process_semantic_segmentation(logits, return_segmentation_scores=True)
    torch.testing.assert_close(plain["segmentation_scores"], logits[0])


def test_post_process_half_precision_on_cpu(processor):
    logits = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    (seg,) = processor.post_process_semantic_segmentation(logits, target_sizes=[(8, 8)])
    assert seg.shape == (8, 8)


def test_post_process_errors(processor):
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="target sizes for a batch of 2"):
        processor.post_process_semantic_segmentation(logits, target_sizes=[(4, 4)])
    with pytest.raises(ValueError, match="logits"):
        processor.post_process_semantic_segmentation(torch.randn(3, 4, 4))


# ---------------------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    processor = SegRetImageProcessor(
        size={"shortest_edge": 64, "longest_edge": 256}, do_reduce_labels=True, antialias=True
    )
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").is_file()
    loaded = SegRetImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert dict(loaded.size) == {"shortest_edge": 64, "longest_edge": 256}
    assert loaded.do_reduce_labels is True and loaded.antialias is True
    assert loaded.to_dict()["image_processor_type"] == "SegRetImageProcessor"

    image, seg_map = rgb_array(48, 96), label_array(48, 96)
    a = processor(image, segmentation_maps=seg_map, return_tensors="pt")
    b = loaded(image, segmentation_maps=seg_map, return_tensors="pt")
    assert a["pixel_values"].shape == (1, 3, 64, 128)
    torch.testing.assert_close(a["pixel_values"], b["pixel_values"])
    torch.testing.assert_close(a["labels"], b["labels"])


def test_size_divisor_round_trip_and_old_configs(tmp_path):
    SegRetImageProcessor(size=ADE20K_SIZE, size_divisor=32).save_pretrained(tmp_path)
    config_file = tmp_path / "preprocessor_config.json"
    config = json.loads(config_file.read_text())
    assert config["size_divisor"] == 32
    assert SegRetImageProcessor.from_pretrained(tmp_path).size_divisor == 32
    assert SegRetImageProcessor.from_pretrained(tmp_path, size_divisor=None).size_divisor is None
    del config["size_divisor"]  # saved before the setting existed
    config_file.write_text(json.dumps(config))
    assert SegRetImageProcessor.from_pretrained(tmp_path).size_divisor is None


def test_default_round_trip(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    loaded = SegRetImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert dict(loaded.size) == {"height": 512, "width": 512}


def test_module_is_self_contained():
    """The file is shipped with checkpoints for trust_remote_code, so it must not import segret_hf."""
    import ast
    import inspect

    import segret_hf.image_processing_segret as module

    tree = ast.parse(inspect.getsource(module))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports break remote-code loading"
            roots.add(node.module.split(".")[0])
    assert roots <= {"os", "collections", "typing", "numpy", "PIL", "torch", "torchvision", "transformers"}
    assert module.__all__ == ["SegRetImageProcessor"]


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------


def test_error_on_map_count_mismatch(processor):
    images = [rgb_array(), rgb_array(seed=1)]
    with pytest.raises(ValueError, match="2 image.*1 segmentation map"):
        processor(images, segmentation_maps=[label_array()])


def test_error_on_map_size_mismatch(processor):
    with pytest.raises(ValueError, match="pixel-aligned"):
        processor(rgb_array(48, 64), segmentation_maps=label_array(48, 60))


def test_error_on_colour_map(processor):
    with pytest.raises(ValueError, match="class index"):
        processor(rgb_array(), segmentation_maps=Image.fromarray(rgb_array()))
    with pytest.raises(ValueError, match="colour-coded"):
        processor(rgb_array(), segmentation_maps=rgb_array())


def test_error_on_non_integer_map(processor):
    with pytest.raises(ValueError, match="non-integer"):
        processor(rgb_array(), segmentation_maps=label_array().astype(np.float32) + 0.5)


def test_error_when_stacking_different_shapes(processor):
    images = [rgb_array(48, 64), rgb_array(64, 48)]
    with pytest.raises(ValueError, match="return_tensors=None"):
        processor(images, size={"shortest_edge": 32}, return_tensors="pt")


def test_error_on_bad_size(processor):
    with pytest.raises(ValueError):
        processor(rgb_array(), size={"height": 32})


def test_error_on_bad_size_divisor_per_call(processor):
    with pytest.raises(ValueError, match="size_divisor must be a positive integer"):
        processor(rgb_array(), size_divisor=0)
