"""The paper's mmsegmentation training pipeline on 8-bit images, and the matching evaluation preprocessing.

Training (mmseg 0.x `train_pipeline` of the SegRet configs):
`Resize(img_scale, ratio_range=(0.5, 2.0), keep_ratio)` -> `RandomCrop(crop, cat_max_ratio=0.75)` ->
`RandomFlip(0.5)` -> `PhotoMetricDistortion` -> `Normalize` -> `Pad(crop, pad_val=0, seg_pad_val=255)`.

As in mmseg, the image stays uint8 until `Normalize`, which is also what makes this fast enough to keep a GPU
fed (see benchmarks/README.md, "Input pipeline"):

- the image is resized, flipped and photometrically distorted as an `(H, W, 3)` uint8 array with the OpenCV
  kernels mmcv runs (`kernels.py`, `photometric.py`), so the pixels are the original training's;
- the label map is never resized as a whole: each crop candidate is read through `cv2.resize`'s
  nearest-neighbour index maps and checked by counting the classes of that window only;
- only the crop is converted to float, normalised and padded.

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

from ..data.label_maps import LabelMapping
from ..image_processing_segret import SegRetImageProcessor
from .arguments import SizeArguments
from .data import INDEX_COLUMN, SegmentationDataError, SplitSource, check_sample, train_id_label
from .decoding import decode_rgb
from .kernels import channel_planes, flip_horizontal, nearest_indices, normalise_into, resize_bilinear
from .photometric import PhotometricParams, photometric_distortion

RESIZE_RATIO_RANGE = (0.5, 2.0)
CAT_MAX_RATIO = 0.75
CROP_RETRIES = 10
FLIP_PROBABILITY = 0.5


def rescaled_size(height: int, width: int, scale: tuple[int, int], ratio: float) -> tuple[int, int]:
    """mmseg `Resize(img_scale=(long, short), keep_ratio=True)` at `ratio`: the largest keep-ratio size whose
    long side is <= ratio * long and short side <= ratio * short (sides rounded half up, like mmcv)."""
    bounds = {"longest_edge": int(scale[0] * ratio), "shortest_edge": int(scale[1] * ratio)}
    return SegRetImageProcessor.get_output_size(height, width, bounds)


def channels_last_uint8(pixels: torch.Tensor) -> np.ndarray:
    """A `(3, H, W)` image as the `(H, W, 3)` uint8 array mmseg reads: float images (16-bit sources) rounded
    to grey levels. No copy for decoded images, which are channels-last already (see `decoding`)."""
    if pixels.dtype != torch.uint8:
        pixels = pixels.round().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


def compact_labels(label: torch.Tensor) -> np.ndarray:
    """The label map as uint8 when its values fit (the usual case: class ids and 255), so that gathering and
    counting crop windows move an eighth of the bytes of int64."""
    values = label.numpy()
    return values.astype(np.uint8) if values.size and 0 <= values.min() and values.max() <= 255 else values


class CategoryBalancedCrop:
    """mmseg `RandomCrop(crop_size, cat_max_ratio)`: retry the crop (up to 10 times) while its labelled pixels
    hold fewer than 2 classes or one class covers `cat_max_ratio` or more of them; then the last box is used.

    Works on the label map *before* the resize: a candidate window of the resized map is gathered through
    the nearest-neighbour index maps, so each try costs one crop-sized gather and count. Images smaller than
    the crop are kept whole along that side; the caller pads them.
    """

    def __init__(
        self,
        crop_size: tuple[int, int],
        cat_max_ratio: float = CAT_MAX_RATIO,
        ignore_index: int = 255,
        retries: int = CROP_RETRIES,
    ) -> None:
        if ignore_index < 0:
            raise ValueError(f"ignore_index must be a non-negative label value, got {ignore_index}")
        self.crop_size = crop_size
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index
        self.retries = retries

    def _random_box(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int]:
        top = int(torch.randint(max(height - self.crop_size[0], 0) + 1, (), generator=generator))
        left = int(torch.randint(max(width - self.crop_size[1], 0) + 1, (), generator=generator))
        return top, left

    def _balanced(self, window: np.ndarray) -> bool:
        counts = torch.bincount(torch.from_numpy(window).flatten(), minlength=self.ignore_index + 1)
        counts[self.ignore_index] = 0
        return bool(torch.count_nonzero(counts) > 1) and int(counts.max()) / int(counts.sum()) < self.cat_max_ratio

    def __call__(
        self, label: np.ndarray, size: tuple[int, int], generator: torch.Generator
    ) -> tuple[int, int, np.ndarray]:
        """`(top, left, window)`: the box in the label map resized to `size`, and that box's labels."""
        rows, cols = nearest_indices(label.shape[0], size[0]), nearest_indices(label.shape[1], size[1])

        def window(top: int, left: int) -> np.ndarray:
            box_rows, box_cols = rows[top : top + self.crop_size[0]], cols[left : left + self.crop_size[1]]
            return label.take(box_rows, axis=0).take(box_cols, axis=1)

        top, left = self._random_box(*size, generator)
        labels = window(top, left)
        if self.cat_max_ratio < 1.0:
            for _ in range(self.retries):
                if self._balanced(labels):
                    break
                top, left = self._random_box(*size, generator)
                labels = window(top, left)
        return top, left, labels


def _normalisation(processor: SegRetImageProcessor) -> tuple[list[float], list[float]]:
    """The processor's rescale + normalise as `(x - mean) / std` on grey levels [0, 255]."""
    factor = processor.rescale_factor if processor.do_rescale else 1.0
    return [value / factor for value in processor.image_mean], [value / factor for value in processor.image_std]


def sample_seed(seed: int, epoch: int, row: int) -> int:
    """A 63-bit seed that differs for every (seed, epoch, row) and does not depend on visiting order."""
    return int(np.random.SeedSequence([seed, epoch, row]).generate_state(1, dtype=np.uint64)[0] >> 1)


class PaperAugmentation:
    """The training pipeline applied to one decoded sample with its own `(seed, epoch, row)` generator.

    `epoch` is advanced by `AugmentationEpochCallback` at the start of each epoch, so each epoch sees new
    augmentations while every (epoch, row) pair stays reproducible. It lives in shared memory: data-loader
    workers that persist across epochs (forked or spawned while it was still 0) read the current one.
    Every decision is drawn from the sample's generator in a fixed order: resize ratio, crop box(es), flip,
    then the photometric draws.
    """

    def __init__(
        self,
        sizes: SizeArguments,
        processor: SegRetImageProcessor,
        seed: int,
        ignore_index: int = 255,
        ratio_range: tuple[float, float] = RESIZE_RATIO_RANGE,
        cat_max_ratio: float = CAT_MAX_RATIO,
    ) -> None:
        low, high = ratio_range
        if not 0 < low <= high:
            raise ValueError(f"ratio_range must be (low, high) with 0 < low <= high, got {ratio_range}")
        self.train_scale = sizes.train_scale
        self.crop_size = sizes.crop_size
        self.ratio_range = (float(low), float(high))
        self.crop = CategoryBalancedCrop(sizes.crop_size, cat_max_ratio, ignore_index)
        self.ignore_index = ignore_index
        self.mean, self.std = _normalisation(processor)
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.fill_(value)

    def __call__(self, pixels: torch.Tensor, label: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(3, crop_h, crop_w)` normalised float32 image and `(crop_h, crop_w)` int64 label map of one sample."""
        generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, row))
        image = channels_last_uint8(pixels)
        ratio = float(torch.empty(()).uniform_(*self.ratio_range, generator=generator))
        size = rescaled_size(image.shape[0], image.shape[1], self.train_scale, ratio)
        top, left, window = self.crop(compact_labels(label), size, generator)
        flip = bool(torch.rand(1, generator=generator) < FLIP_PROBABILITY)
        photometric = PhotometricParams.draw(generator)

        height, width = window.shape
        image = resize_bilinear(image, size)[top : top + height, left : left + width]
        if flip:
            image, window = flip_horizontal(image), window[:, ::-1]
        image = photometric_distortion(image, photometric)

        # Normalise into the padded output (mmseg pads after normalising: padding is 0, the mean colour).
        padded = (height, width) != tuple(self.crop_size)
        pixel_values = (torch.zeros if padded else torch.empty)((3, *self.crop_size), dtype=torch.float32)
        for channel, plane in enumerate(channel_planes(image)):
            normalise_into(plane, self.mean[channel], self.std[channel], pixel_values.numpy()[channel, :height, :width])
        labels = np.full(self.crop_size, self.ignore_index, dtype=np.int64)
        labels[:height, :width] = window
        return pixel_values, torch.from_numpy(labels)


class EvaluationResize:
    """The paper's test preprocessing: the image processor's keep-ratio resize and normalisation.

    The label map keeps its original size: metrics are computed after resizing the logits to it.
    """

    def __init__(self, processor: SegRetImageProcessor) -> None:
        self.processor = processor

    def __call__(self, pixels: torch.Tensor, label: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        processed = self.processor.preprocess(pixels.to(torch.float32), do_convert_rgb=False, return_tensors="pt")
        return processed["pixel_values"][0], label


class SplitTransform:
    """`with_transform` callable: decode a batch of rows, map labels to train ids, check, then transform.

    Output per row: `pixel_values` (3, H, W), `labels` (H, W) int64 and `row` (for error messages). Images may
    come encoded (see `decoding.keep_encoded`) or already decoded.
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
        try:
            pixels = decode_rgb(image, self.processor)
        except (OSError, ValueError) as error:
            raise SegmentationDataError(f"{self.source.where(row, self.source.image_column)}: {error}") from error
        check_sample(pixels.permute(1, 2, 0).numpy(), label, self.mapping, self.source, row)
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
