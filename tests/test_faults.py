"""Faults a user can hit, one test each: every one ends in a single clear message, and nothing is lost,
half-written or silently wrong.

Entry points: the image processor, the converter, `scripts/evaluate.py`, `examples/segment_image.py` and the
training script. Tiny models and datasets from `helpers`; the two tests that need real processes (a run
killed during its final save, two runs into one folder) start them with `subprocess`.
"""

from __future__ import annotations

import logging

import numpy as np
import PIL.Image
import pytest
import torch

from segret_hf import SegRetImageProcessor

# ---------------------------------------------------------------------------------------------------------
# Image processor
# ---------------------------------------------------------------------------------------------------------


def test_processor_warns_on_float_images_already_in_0_1(caplog: pytest.LogCaptureFixture) -> None:
    image = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    logging.Logger.warning_once.cache_clear()  # the warning is given once per process
    with caplog.at_level(logging.WARNING):
        SegRetImageProcessor()(image, return_tensors="pt")
    assert "do_rescale=False" in caplog.text
    # Told so, the processor gives what the same image in 0-255 gives.
    expected = SegRetImageProcessor()(image * 255, return_tensors="pt")["pixel_values"]
    actual = SegRetImageProcessor()(image, do_rescale=False, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16])
def test_processor_reads_8bit_values_in_pil_integer_modes_as_8bit(dtype: type) -> None:
    grey = np.random.default_rng(1).integers(0, 256, (16, 16)).astype(np.uint8)
    image = PIL.Image.fromarray(grey.astype(dtype))
    assert image.mode in ("I", "I;16")
    reference = SegRetImageProcessor()(PIL.Image.fromarray(grey, mode="L"), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(SegRetImageProcessor()(image, return_tensors="pt")["pixel_values"], reference)


def test_processor_refuses_pil_integer_values_beyond_16_bits() -> None:
    image = PIL.Image.fromarray(np.full((4, 4), 70000, dtype=np.int32))
    with pytest.raises(ValueError, match=r"mode 'I' holds values in \[70000, 70000\]"):
        SegRetImageProcessor()(image)


@pytest.mark.parametrize(
    "images",
    [np.zeros((0, 0, 3), np.uint8), torch.zeros(3, 0, 8), [np.zeros((8, 0), np.uint8)]],
    ids=["array", "tensor", "list"],
)
def test_processor_refuses_images_without_pixels(images: object) -> None:
    with pytest.raises(ValueError, match="has no pixels"):
        SegRetImageProcessor()(images)


@pytest.mark.parametrize("images", [[], (), np.zeros((0, 8, 8, 3), np.uint8)], ids=["list", "tuple", "batch"])
def test_processor_refuses_an_empty_batch(images: object) -> None:
    with pytest.raises(ValueError, match="No images given"):
        SegRetImageProcessor()(images)
