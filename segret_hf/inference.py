"""Test-time inference protocols of the SegRet paper: single scale, multi-scale + flip, sliding window.

The paper evaluated with mmsegmentation. Its test pipeline, reproduced here on top of the model's saved
image processor, is:

* **resize**: each image is resized as the image processor's `size` says (for the released models "short
  side to the crop size, aspect ratio kept") and, when the processor has a `size_divisor` (32 for ADE20K
  and COCO-Stuff, mmseg `AlignedResize`), stretched to the next multiple of it, so the default single-scale
  prediction is exactly what `pipeline("image-segmentation")` returns for the same model folder;
* **multi-scale**: every value of that `size` is multiplied by each ratio (mmseg's `img_ratios`, truncated
  to an integer like mmseg does), and each scaled image is aligned to `size_divisor` on its own, as mmseg's
  `MultiScaleFlipAug` runs `AlignedResize` per scale; optionally with a horizontally flipped copy whose
  output is flipped back;
* **sliding window** (mmseg `slide_inference`): windows of `window` pixels every `stride` pixels over the
  resized (and aligned) image, the last window in each direction aligned to the border, each window's
  logits upsampled to the window size, summed and divided by the number of windows covering each pixel;
  an image smaller than a window is zero-padded (in normalised space, i.e. with the mean colour) and the
  padding cropped off;
* **fusion**: logits of each view are resized (bilinear, `align_corners=False`) to the image's original
  size, turned into class probabilities (softmax) and averaged over all views; the prediction is the
  argmax.

Whole-image views go from stride-4 logits to the original size in one resize, like the pipeline's
`post_process_semantic_segmentation`. mmseg's `whole_inference` goes through the network input size first;
the two differ only by interpolation rounding. Sliding-window views necessarily take mmseg's two steps.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import PIL.Image
import torch
import torch.nn.functional as F
from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation, PreTrainedModel

from .checkpoint_files import check_weight_files

if TYPE_CHECKING:
    from .data.presets import DatasetPreset

DTYPES: Mapping[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Names accepted for the inference dtype."""

# Size keys the image processor understands; all are lengths in pixels, so a scale ratio multiplies each.
_LENGTH_KEYS = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width")


@dataclass(frozen=True)
class InferenceProtocol:
    """How one image becomes one prediction: which scales, whether to flip, whole image or windows.

    Args:
        scales: ratios applied to the image processor's `size`; `(1.0,)` is single-scale.
        flip: also run a horizontally flipped copy of every scale and average it in.
        window: `(height, width)` of sliding windows in resized-image pixels; `None` runs the whole image.
        stride: `(height, width)` step between windows; required with `window`, at most `window` so that
            every pixel is covered.
    """

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    window: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        # Accept lists (e.g. from argparse) but store tuples, so protocols compare and hash by value.
        object.__setattr__(self, "scales", tuple(float(ratio) for ratio in self.scales))
        for name in ("window", "stride"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not self.scales or any(not (ratio > 0 and math.isfinite(ratio)) for ratio in self.scales):
            raise ValueError(f"scales must be a non-empty list of positive ratios, got {list(self.scales)}.")
        if (self.window is None) != (self.stride is None):
            raise ValueError(f"window and stride go together; got window={self.window}, stride={self.stride}.")
        if self.window is not None:
            if len(self.window) != 2 or len(self.stride) != 2 or min(*self.window, *self.stride) <= 0:
                raise ValueError(
                    f"window and stride must be positive (height, width) pairs, got {self.window} and {self.stride}."
                )
            if self.stride[0] > self.window[0] or self.stride[1] > self.window[1]:
                raise ValueError(
                    f"stride {self.stride} is larger than window {self.window}: pixels between windows would "
                    "get no prediction. Use a stride of at most the window size (mmseg uses about 2/3 of it)."
                )

    @property
    def num_views(self) -> int:
        """Number of network outputs averaged per image (scales times flips)."""
        return len(self.scales) * (2 if self.flip else 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, recorded next to the metrics so a number says how it was obtained."""
        return {
            "mode": "whole" if self.window is None else "slide",
            "scales": list(self.scales),
            "flip": self.flip,
            "window": list(self.window) if self.window is not None else None,
            "stride": list(self.stride) if self.stride is not None else None,
        }


def scaled_size(size: Mapping[str, int] | Any, ratio: float) -> dict[str, int]:
    """The image processor `size` with every length multiplied by `ratio` (truncated, as mmseg does).

    Accepts a dict or transformers' `SizeDict`. Unknown non-empty keys (e.g. pixel budgets) are rejected
    because scaling them by a length ratio would be wrong.
    """
    items = {key: value for key, value in dict(size).items() if value is not None}
    unknown = sorted(set(items) - set(_LENGTH_KEYS))
    if unknown or not items:
        raise ValueError(
            f"Cannot scale the image processor size {items}: expected lengths among {list(_LENGTH_KEYS)}."
        )
    return {key: max(1, int(value * ratio)) for key, value in items.items()}


def size_divisor_override(size_divisor: int | None, preset: DatasetPreset | None = None) -> dict[str, int | None]:
    """Image-processor settings that fix the test-time alignment (mmseg `AlignedResize`); `{}` keeps the model's.

    An explicit `size_divisor` wins, 0 meaning no alignment; else a dataset preset brings its dataset's paper
    protocol (32 for ADE20K and COCO-Stuff, none for Cityscapes); else the model's saved processor config
    decides, so a converted ADE20K model is evaluated the way the paper evaluated it.
    """
    if size_divisor is None:
        return {} if preset is None else {"size_divisor": preset.test_size_divisor}
    if isinstance(size_divisor, bool) or not isinstance(size_divisor, int) or size_divisor < 0:
        raise ValueError(
            f"size_divisor must be a non-negative integer (e.g. 32; 0 for no alignment), got {size_divisor!r}."
        )
    return {"size_divisor": size_divisor or None}


def image_size(image: Any) -> tuple[int, int]:
    """`(height, width)` of a PIL image or an `(H, W)`, `(H, W, C)` or `(C, H, W)` array/tensor."""
    if isinstance(image, PIL.Image.Image):
        return image.height, image.width
    shape = tuple(image.shape)
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 3:
        # Channels-first when the first axis looks like channels and the last does not (processor's rule).
        if shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
            return shape[1], shape[2]
        return shape[0], shape[1]
    raise ValueError(f"Expected a single image of shape (H, W), (H, W, C) or (C, H, W), got shape {shape}.")


def window_positions(length: int, window: int, stride: int) -> list[tuple[int, int]]:
    """`(start, end)` of mmseg's sliding windows along one axis of `length >= window` pixels.

    Windows start every `stride` pixels; the last one is shifted back so that it ends at the border.
    """
    count = max(length - window + stride - 1, 0) // stride + 1
    positions = []
    for index in range(count):
        end = min(index * stride + window, length)
        positions.append((max(end - window, 0), end))
    return positions


def load_model_and_processor(
    model_name_or_path: str, image_processor_kwargs: Mapping[str, Any] | None = None
) -> tuple[PreTrainedModel, Any]:
    """The segmentation model and image processor saved in a folder or Hub id, both required.

    A local folder's files are checked first, so a truncated or damaged one is named instead of failing inside
    the loader; a missing image processor is named with the way to save one.
    """
    if Path(model_name_or_path).is_dir():
        check_weight_files(model_name_or_path)
    try:
        image_processor = AutoImageProcessor.from_pretrained(model_name_or_path, **(image_processor_kwargs or {}))
    except OSError as error:
        raise OSError(
            f"Could not load an image processor from {model_name_or_path!r}: {error}\nSave one next to the "
            "model with `SegRetImageProcessor(...).save_pretrained(folder)`."
        ) from error
    return AutoModelForSemanticSegmentation.from_pretrained(model_name_or_path), image_processor


class SegmentationInferencer:
    """Runs a semantic-segmentation model under an :class:`InferenceProtocol`, in batches.

    Images are preprocessed by the model's own image processor (so defaults match the pipeline), moved to
    `device`, and the model runs in `dtype` (the weights are cast; probabilities are fused in float32).
    Images of different sizes may share a call: views of equal resized shape are stacked into batches of
    at most `batch_size`, the rest run separately; sliding windows of one view are batched the same way.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        image_processor: Any,
        protocol: InferenceProtocol | None = None,
        batch_size: int = 1,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise ValueError(f"Unknown dtype {dtype!r}; choose one of {list(DTYPES)}.")
            dtype = DTYPES[dtype]
        self.protocol = protocol or InferenceProtocol()
        if self.protocol.scales != (1.0,) and not getattr(image_processor, "do_resize", True):
            raise ValueError(
                "Multi-scale inference scales the image processor's `size`, but this processor has "
                "do_resize=False. Save the processor with a size (e.g. {'shortest_edge': 512}) first."
            )
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.dtype = dtype or next(model.parameters()).dtype
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.image_processor = image_processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        protocol: InferenceProtocol | None = None,
        batch_size: int = 1,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        image_processor_kwargs: Mapping[str, Any] | None = None,
    ) -> SegmentationInferencer:
        """Load model and image processor from a folder or Hub id (both must be saved there).

        `image_processor_kwargs` override the saved processor settings, e.g. `{"size_divisor": None}` to
        evaluate a model saved with aligned resizing without it.
        """
        model, image_processor = load_model_and_processor(model_name_or_path, image_processor_kwargs)
        return cls(model, image_processor, protocol, batch_size=batch_size, device=device, dtype=dtype)

    @property
    def id2label(self) -> dict[int, str]:
        """The model's class names by id."""
        return {int(index): name for index, name in self.model.config.id2label.items()}

    @property
    def num_labels(self) -> int:
        """Number of classes the model predicts."""
        return int(self.model.config.num_labels)

    @torch.inference_mode()
    def predict_probabilities(self, images: Sequence[Any]) -> list[torch.Tensor]:
        """Class probabilities `(num_labels, H, W)` at each image's original size, averaged over all views.

        `images` are whatever the image processor accepts, one image per entry (PIL images, HWC arrays...).
        Results stay on the inference device, in float32.
        """
        if not images:
            return []
        sizes = [image_size(image) for image in images]
        fused: list[torch.Tensor | None] = [None] * len(images)
        for ratio in self.protocol.scales:
            size = scaled_size(self.image_processor.size, ratio)
            pixel_values = self.image_processor(images=list(images), size=size, return_tensors=None)["pixel_values"]
            views = [(index, False, pixels) for index, pixels in enumerate(pixel_values)]
            if self.protocol.flip:
                views += [(index, True, pixels.flip(-1)) for index, pixels in enumerate(pixel_values)]
            for view_index, view_logits in self._view_logits([pixels for _, _, pixels in views]):
                index, flipped, _ = views[view_index]
                resized = F.interpolate(view_logits[None], size=sizes[index], mode="bilinear", align_corners=False)
                probabilities = resized[0].softmax(dim=0)
                if flipped:
                    probabilities = probabilities.flip(-1)
                fused[index] = probabilities if fused[index] is None else fused[index] + probabilities
        return [probabilities / self.protocol.num_views for probabilities in fused]

    def predict(self, images: Sequence[Any]) -> list[torch.Tensor]:
        """Class-id maps (int64, `(H, W)`, on the CPU) at each image's original size."""
        return [probabilities.argmax(dim=0).cpu() for probabilities in self.predict_probabilities(images)]

    def _forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Float32 logits of a stacked batch, run in chunks of `batch_size`."""
        chunks = []
        for start in range(0, pixel_values.shape[0], self.batch_size):
            chunk = pixel_values[start : start + self.batch_size].to(device=self.device, dtype=self.dtype)
            chunks.append(self.model(pixel_values=chunk).logits.float())
        return torch.cat(chunks)

    def _view_logits(self, views: list[torch.Tensor]) -> Iterator[tuple[int, torch.Tensor]]:
        """`(view index, logits)` for each `(3, h, w)` view, in no particular order.

        Whole-image logits are at stride 4; sliding-window logits at the view's size. Yielding each shape
        group (or each sliding view) as soon as it is done lets the caller fuse it and free it, so memory
        holds at most one group of logits rather than every view of the batch.
        """
        if self.protocol.window is not None:
            for index, view in enumerate(views):
                yield index, self._slide_logits(view)
            return
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, view in enumerate(views):
            by_shape.setdefault(tuple(view.shape), []).append(index)
        for indices in by_shape.values():
            yield from zip(indices, self._forward(torch.stack([views[i] for i in indices])))

    def _slide_logits(self, view: torch.Tensor) -> torch.Tensor:
        """mmseg `slide_inference` on one `(3, h, w)` view; returns `(num_labels, h, w)` averaged logits."""
        window_h, window_w = self.protocol.window
        stride_h, stride_w = self.protocol.stride
        height, width = view.shape[-2:]
        padded = F.pad(view, (0, max(window_w - width, 0), 0, max(window_h - height, 0)))
        padded_h, padded_w = padded.shape[-2:]
        boxes = [
            (top, bottom, left, right)
            for top, bottom in window_positions(padded_h, window_h, stride_h)
            for left, right in window_positions(padded_w, window_w, stride_w)
        ]
        crops = torch.stack([padded[:, top:bottom, left:right] for top, bottom, left, right in boxes])
        logits = F.interpolate(self._forward(crops), size=(window_h, window_w), mode="bilinear", align_corners=False)
        summed = logits.new_zeros((logits.shape[1], padded_h, padded_w))
        counts = logits.new_zeros((1, padded_h, padded_w))
        for (top, bottom, left, right), window_logits in zip(boxes, logits):
            summed[:, top:bottom, left:right] += window_logits
            counts[:, top:bottom, left:right] += 1
        return (summed / counts)[:, :height, :width]


def parse_hw(text: str, flag: str | None = None) -> tuple[int, int]:
    """Parse `"512"` or `"512x1024"` / `"512,1024"` (height, width) from the command line.

    A ValueError otherwise, its message starting with `flag` (the option that gave `text`) when given.
    """
    parts = str(text).lower().replace(",", "x").split("x")
    prefix = f"{flag}: " if flag else ""
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(f"{prefix}Expected N or HxW (e.g. 512 or 512x1024), got {text!r}.") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise ValueError(f"{prefix}Expected N or HxW with positive integers, got {text!r}.")
    return values


def hw_argument(text: str) -> tuple[int, int]:
    """:func:`parse_hw` as an argparse `type=`: a bad size becomes argparse's usage error naming the flag."""
    try:
        return parse_hw(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def default_stride(window: tuple[int, int]) -> tuple[int, int]:
    """Two thirds of the window, mmseg's ADE20K choice (512 -> 341)."""
    return (max(1, window[0] * 2 // 3), max(1, window[1] * 2 // 3))

