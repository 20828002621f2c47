"""The paper's mmsegmentation training pipeline on torchvision v2, and the matching evaluation preprocessing.

Training (mmseg 0.x `train_pipeline` of the SegRet configs):
`Resize(img_scale, ratio_range=(0.5, 2.0), keep_ratio)` -> `RandomCrop(crop, cat_max_ratio=0.75)` ->
`RandomFlip(0.5)` -> `PhotoMetricDistortion` -> `Normalize` -> `Pad(crop, pad_val=0, seg_pad_val=255)`.
Image and label map travel together as `tv_tensors.Image` / `tv_tensors.Mask`, so every geometric step
moves both identically (the mask is resized with nearest neighbour, padded with 255).

Randomness is drawn from a generator seeded by `(seed, epoch, row)` instead of the global one. A resumed
run therefore augments every sample exactly as the uninterrupted run would, whatever the data loader
prefetched before the checkpoint and however many worker processes there are.

Evaluation follows the paper's test pipeline: the image processor resizes the short side to the test
scale (aspect ratio kept) and normalises; the label map stays at its original size, because the metric
is computed after resizing the logits to the label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as tvF

from ..data.label_maps import LabelMapping
from ..image_processing_segret import SegRetImageProcessor
from .arguments import SizeArguments
from .data import INDEX_COLUMN, SplitSource, check_sample, train_id_label

RESIZE_RATIO_RANGE = (0.5, 2.0)
CAT_MAX_RATIO = 0.75
CROP_RETRIES = 10
FLIP_PROBABILITY = 0.5
BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18  # OpenCV hue units (degrees / 2), as mmseg uses


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))


def _coin() -> bool:
    return bool(torch.randint(2, ()))


def _image_of(flat_inputs: list[Any]) -> tv_tensors.Image:
    return next(item for item in flat_inputs if isinstance(item, tv_tensors.Image))


class RandomRescale(v2.Transform):
    """mmseg `Resize(img_scale=(long, short), ratio_range, keep_ratio=True)`.

    A ratio r is drawn uniformly from `ratio_range`; the image is then rescaled by the largest factor that
    keeps its long side <= r * long and its short side <= r * short (sides rounded half up, like mmcv).
    """

    def __init__(self, scale: tuple[int, int], ratio_range: tuple[float, float] = RESIZE_RATIO_RANGE) -> None:
        super().__init__()
        self.scale = scale
        self.ratio_range = ratio_range

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = tvF.get_size(_image_of(flat_inputs))
        ratio = _uniform(*self.ratio_range)
        bounds = {"longest_edge": int(self.scale[0] * ratio), "shortest_edge": int(self.scale[1] * ratio)}
        return {"size": list(SegRetImageProcessor.get_output_size(height, width, bounds))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # Masks are always resized with nearest neighbour by torchvision; images bilinearly without
        # antialiasing, like cv2.INTER_LINEAR in mmseg.
        return self._call_kernel(
            tvF.resize, inpt, size=params["size"], interpolation=tvF.InterpolationMode.BILINEAR, antialias=False
        )


class CategoryBalancedRandomCrop(v2.Transform):
    """mmseg `RandomCrop(crop_size, cat_max_ratio)`: retry the crop (up to 10 times) while one class covers
    `cat_max_ratio` or more of its labelled pixels, so crops rarely show a single class.

    Images smaller than the crop are kept whole along that side; `PadToSize` completes them.
    """

    def __init__(
        self,
        crop_size: tuple[int, int],
        cat_max_ratio: float = CAT_MAX_RATIO,
        ignore_index: int = 255,
        retries: int = CROP_RETRIES,
    ) -> None:
        super().__init__()
        self.crop_size = crop_size
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index
        self.retries = retries

    def _random_box(self, height: int, width: int) -> tuple[int, int]:
        top = int(torch.randint(max(height - self.crop_size[0], 0) + 1, ()))
        left = int(torch.randint(max(width - self.crop_size[1], 0) + 1, ()))
        return top, left

    def _balanced(self, mask: torch.Tensor, top: int, left: int) -> bool:
        window = mask[..., top : top + self.crop_size[0], left : left + self.crop_size[1]]
        values, counts = torch.unique(window, return_counts=True)
        counts = counts[values != self.ignore_index]
        return len(counts) > 1 and float(counts.max()) / float(counts.sum()) < self.cat_max_ratio

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = tvF.get_size(_image_of(flat_inputs))
        top, left = self._random_box(height, width)
        mask = next((item for item in flat_inputs if isinstance(item, tv_tensors.Mask)), None)
        if mask is not None and self.cat_max_ratio < 1.0:
            for _ in range(self.retries):
                if self._balanced(mask, top, left):
                    break
                top, left = self._random_box(height, width)
        return {
            "top": top,
            "left": left,
            "height": min(self.crop_size[0], height - top),
            "width": min(self.crop_size[1], width - left),
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(tvF.crop, inpt, **params)


class PhotoMetricDistortion(v2.Transform):
    """mmseg `PhotoMetricDistortion` on a float image in [0, 255]; label maps pass through untouched.

    Each of brightness (+-32), contrast (x0.5-1.5), saturation (x0.5-1.5 in HSV) and hue (+-18 OpenCV
    units, i.e. +-36 degrees) is applied with probability 0.5; contrast goes either first or last (coin
    flip), as in mmseg. Saturation scales HSV's S channel exactly, which for RGB means moving each channel
    away from or towards the pixel's maximum: `c' = v - (v - c) * min(alpha, v / (v - min))`.
    """

    _transformed_types = (tv_tensors.Image,)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {
            "brightness": _uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA) if _coin() else None,
            "contrast_first": _coin(),
            "contrast": _uniform(*CONTRAST_RANGE) if _coin() else None,
            "saturation": _uniform(*SATURATION_RANGE) if _coin() else None,
            "hue": int(torch.randint(-HUE_DELTA, HUE_DELTA, ())) if _coin() else None,
        }

    def transform(self, inpt: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        image = inpt.as_subclass(torch.Tensor)
        if params["brightness"] is not None:
            image = (image + params["brightness"]).clamp(0, 255)
        if params["contrast_first"] and params["contrast"] is not None:
            image = (image * params["contrast"]).clamp(0, 255)
        if params["saturation"] is not None:
            brightest, darkest = image.amax(dim=-3, keepdim=True), image.amin(dim=-3, keepdim=True)
            limit = brightest / (brightest - darkest).clamp_min(1e-6)
            image = (brightest - (brightest - image) * limit.clamp(max=params["saturation"])).clamp(0, 255)
        if params["hue"] is not None:
            image = (tvF.adjust_hue(image / 255.0, params["hue"] / 180.0) * 255.0).clamp(0, 255)
        if not params["contrast_first"] and params["contrast"] is not None:
            image = (image * params["contrast"]).clamp(0, 255)
        return tv_tensors.wrap(image, like=inpt)


class PadToSize(v2.Transform):
    """mmseg `Pad(size=crop, pad_val=0, seg_pad_val=255)`: pad bottom and right up to the crop size."""

    def __init__(self, size: tuple[int, int], ignore_index: int = 255) -> None:
        super().__init__()
        self.size = size
        self.ignore_index = ignore_index

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = tvF.get_size(_image_of(flat_inputs))
        return {"padding": [0, 0, max(self.size[1] - width, 0), max(self.size[0] - height, 0)]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        fill = self.ignore_index if isinstance(inpt, tv_tensors.Mask) else 0
        return self._call_kernel(tvF.pad, inpt, padding=params["padding"], fill=fill)


def normalisation(processor: SegRetImageProcessor) -> v2.Normalize:
    """The processor's rescale + normalise, for images in [0, 255]: `(x * r - mean) / std`."""
    factor = processor.rescale_factor if processor.do_rescale else 1.0
    return v2.Normalize(
        mean=[value / factor for value in processor.image_mean], std=[value / factor for value in processor.image_std]
    )


def training_pipeline(sizes: SizeArguments, processor: SegRetImageProcessor, ignore_index: int = 255) -> v2.Compose:
    """The paper's training augmentation for a `(tv_tensors.Image, tv_tensors.Mask)` pair."""
    return v2.Compose(
        [
            RandomRescale(sizes.train_scale),
            CategoryBalancedRandomCrop(sizes.crop_size, ignore_index=ignore_index),
            v2.RandomHorizontalFlip(FLIP_PROBABILITY),
            PhotoMetricDistortion(),
            normalisation(processor),
            PadToSize(sizes.crop_size, ignore_index=ignore_index),
        ]
    )


def sample_seed(seed: int, epoch: int, row: int) -> int:
    """A 63-bit seed that differs for every (seed, epoch, row) and does not depend on visiting order."""
    return int(np.random.SeedSequence([seed, epoch, row]).generate_state(1, dtype=np.uint64)[0] >> 1)


class PaperAugmentation:
    """The training pipeline applied to one decoded sample with its own `(seed, epoch, row)` generator.

    `epoch` is advanced by `AugmentationEpochCallback` at the start of each epoch, so each epoch sees new
    augmentations while every (epoch, row) pair stays reproducible.
    """

    def __init__(
        self, sizes: SizeArguments, processor: SegRetImageProcessor, seed: int, ignore_index: int = 255
    ) -> None:
        self.pipeline = training_pipeline(sizes, processor, ignore_index)
        self.seed = seed
        self.epoch = 0

    def __call__(self, pixels: torch.Tensor, label: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, self.epoch, row))
            image, mask = self.pipeline(tv_tensors.Image(pixels), tv_tensors.Mask(label[None]))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)[0]


class EvaluationResize:
    """The paper's test preprocessing: the image processor's keep-ratio resize and normalisation.

    The label map keeps its original size: metrics are computed after resizing the logits to it.
    """

    def __init__(self, processor: SegRetImageProcessor) -> None:
        self.processor = processor

    def __call__(self, pixels: torch.Tensor, label: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        processed = self.processor.preprocess(pixels, do_convert_rgb=False, return_tensors="pt")
        return processed["pixel_values"][0], label


class SplitTransform:
    """`with_transform` callable: decode a batch of rows, map labels to train ids, check, then transform.

    Output per row: `pixel_values` (3, H, W), `labels` (H, W) int64 and `row` (for error messages).
    """

    def __init__(
        self,
        processor: SegRetImageProcessor,
        mapping: LabelMapping,
        source: SplitSource,
        transform: PaperAugmentation | EvaluationResize,
    ) -> None:
        self.processor = processor
        self.mapping = mapping
        self.source = source
        self.transform = transform

    def _decode(self, image: Any, raw_label: Any, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, label = train_id_label(raw_label, self.mapping, self.source, row)
        check_sample(image, label, self.mapping, self.source, row)
        pixels = self.processor.process_image(image, do_convert_rgb=True).to(torch.float32)
        return pixels, torch.from_numpy(label)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        output: dict[str, list[Any]] = {"pixel_values": [], "labels": [], "row": []}
        columns = (batch[self.source.image_column], batch[self.source.label_column], batch[INDEX_COLUMN])
        for image, raw_label, row in zip(*columns):
            pixels, label = self.transform(*self._decode(image, raw_label, int(row)), int(row))
            output["pixel_values"].append(pixels)
            output["labels"].append(label)
            output["row"].append(int(row))
        return output

    def with_indices(self, batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        """`IterableDataset.map(..., with_indices=True)` form, for streamed splits (rows are stream positions)."""
        return self({**batch, INDEX_COLUMN: indices})
