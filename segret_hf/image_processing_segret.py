"""Image processor for SegRet semantic segmentation.

This file is deliberately self-contained: it is copied next to saved checkpoints and loaded with
`trust_remote_code=True` in environments where `segret_hf` is not installed, so it imports only from
`transformers`, `torch`, `torchvision`, `numpy`, `PIL` and the standard library.

It reproduces the test-time pipeline that SegRet was evaluated with in mmsegmentation
(`LoadImageFromFile -> Resize(keep_ratio) -> Normalize(ImageNet mean/std, to_rgb)`) on top of the
transformers 5 `TorchvisionBackend`, and keeps the interface of `SegformerImageProcessor`
(`pixel_values`, `labels`, `do_reduce_labels`, `post_process_semantic_segmentation`) so that the
`image-segmentation` pipeline, `Trainer` recipes and user code written for SegFormer work unchanged.

Differences from `SegformerImageProcessor`, and why:

* `size={"shortest_edge": N}` (optionally with `"longest_edge": M`) resizes with mmcv's keep-ratio rule
  (`scale = min(N / short_side, M / long_side)`, sides rounded half up), which is the "short side to N"
  protocol of the paper; SegFormer's processor only supports a fixed `height`/`width`.
* Images are resized in float32 and, by default, without antialiasing. mmsegmentation resizes with
  `cv2.INTER_LINEAR`, which does not antialias, so this is the closer match to the reference numbers;
  float32 also avoids torchvision's uint8 intermediate quantisation and lets 8-bit and 16-bit inputs
  share one code path. Pass `antialias=True` for PIL-like (SegFormer-like) downscaling.
* 16-bit inputs (PIL `"I;16*"`/`"I"` modes, `uint16` arrays/tensors) are mapped to the 0-255 range by
  `x * 255 / 65535` before the usual `1/255` rescale. The stock backend would either clip them at 255
  (PIL `convert("RGB")`) or rescale them by `1/255` into the 0-257 range. PIL's integer modes do not say
  how many bits the values use (8-bit greyscale is often opened or converted to `"I"`), so a PIL image in
  those modes whose values all fit in 0-255 is read as 8-bit data; scaling it as 16-bit would turn it black.
* Float inputs whose values all lie in [0, 1] look already rescaled: like the transformers processors, this
  one warns and names `do_rescale=False` instead of silently feeding a near-black image.
* An alpha channel is dropped rather than composited onto white: mmsegmentation loads images with
  `cv2.imread(..., IMREAD_COLOR)`, which discards alpha, so this matches what the model was evaluated on.
* `size_divisor=N` reproduces mmsegmentation's `AlignedResize`, the test-time resize of the paper's ADE20K and
  COCO-Stuff results: after the keep-ratio resize, each side is rounded up to a multiple of `N` and the image
  is resized a second time (bilinear, a slight stretch, no padding) to that size. Two interpolations rather
  than one so that the network sees exactly the pixels it was evaluated on.
"""

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as tvF
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_transforms import group_images_by_shape, reorder_images
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ChannelDimension,
    ImageInput,
    PILImageResampling,
    SizeDict,
    infer_channel_dimension_format,
)
from transformers.processing_utils import ImagesKwargs, Unpack
from transformers.utils import TensorType, logging

try:  # a dedicated output class that later 5.x releases ship; transformers 5.0 does not have it.
    from transformers.image_processing_outputs import SemanticSegmentationPostProcessorOutput
except ImportError:  # pragma: no cover - depends on the installed transformers version
    SemanticSegmentationPostProcessorOutput = None

__all__ = ["SegRetImageProcessor"]

logger = logging.get_logger(__name__)

# PIL modes whose pixels hold 16-bit intensities. PIL opens 16-bit PNG/TIFF files as "I;16*" or, for
# some files and Pillow versions, as 32-bit "I"; in practice "I" images are 16-bit scans, so both are
# scaled by 255 / 65535.
_PIL_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_UINT16_TO_8BIT_RANGE = 255.0 / 65535.0
_UINT16_MAX = 65535


def _pil_integer_pixels(image: PIL.Image.Image) -> np.ndarray:
    """Float32 pixels on the 0-255 scale of a PIL image in an integer mode (`"I"`, `"I;16*"`).

    The mode does not tell the bit depth of the data: values that all fit in 0-255 are 8-bit data (kept as
    they are), others 16-bit (scaled by 255 / 65535). Values outside 0-65535 have no known scale.
    """
    pixels = np.array(image)
    low, high = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
    if low < 0 or high > _UINT16_MAX:
        raise ValueError(
            f"A PIL image in mode {image.mode!r} holds values in [{low}, {high}], outside the 8-bit (0-255) and "
            "16-bit (0-65535) ranges this processor knows how to scale. Convert it to 8 or 16 bits first."
        )
    pixels = pixels.astype(np.float32)
    return pixels if high <= 255 else pixels * _UINT16_TO_8BIT_RANGE


def _looks_rescaled(image: Any) -> bool:
    """Whether a raw float array/tensor holds values in [0, 1] only, i.e. was already divided by 255.

    An all-zero image is black on either scale, so it does not count.
    """
    if isinstance(image, np.ndarray) and np.issubdtype(image.dtype, np.floating) and image.size:
        return bool(image.min() >= 0 and 0 < image.max() <= 1)
    if isinstance(image, torch.Tensor) and image.is_floating_point() and image.numel():
        return bool(image.min() >= 0 and 0 < image.max() <= 1)
    return False


INDEX_MAP_MODES = ("1", "L", "P", *_PIL_16BIT_MODES)
"""PIL modes whose pixels are single integers (class ids), as opposed to colours."""

# The ignore index (segret_hf.data.label_sets.IGNORE_INDEX, which remote code cannot import): "reduce labels"
# gives it to unlabelled pixels and keeps it as it is.
_IGNORE_INDEX = 255


def index_map_pixels(image: PIL.Image.Image, what: str) -> np.ndarray:
    """The class ids of a label map stored as a PIL image; a ValueError starting with `what` for colour images.

    The processor and segret_hf's dataset readers both decode label maps through this, so they accept the
    same images.
    """
    if image.mode not in INDEX_MAP_MODES:
        raise ValueError(
            f"{what} is a {image.mode!r} image; label maps must be single-channel, one class index per pixel "
            "(modes L, P, I;16, I). Convert colour-coded masks to class ids first."
        )
    return np.array(image)


def single_channel_map(label: np.ndarray | torch.Tensor, what: str) -> np.ndarray | torch.Tensor:
    """`label` as `(height, width)`: a `(H, W, 1)` or `(1, H, W)` map drops its unit axis, other shapes raise."""
    if label.ndim == 3 and 1 in (label.shape[0], label.shape[-1]):
        label = label.squeeze(0) if label.shape[0] == 1 else label.squeeze(-1)
    if label.ndim != 2:
        raise ValueError(
            f"{what} has shape {tuple(label.shape)} and dtype {label.dtype}; expected a (height, width) map of "
            "integer class ids (a single channel)."
        )
    return label


def reduce_label_ids(label: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """ADE20K / COCO-Stuff "reduce labels" on an integer array or tensor: 0 -> 255, `l` -> `l - 1`, 255 stays.

    Those datasets use 0 for "unlabelled", which is not one of the model's classes; after this mapping class
    ids start at 0 and unlabelled pixels carry the ignore index. The one implementation of the rule: the
    processor's `do_reduce_labels`, segret_hf's label conversion and the ADE20K lookup table use it.
    """
    reduced = label - 1
    reduced[(label == 0) | (label == _IGNORE_INDEX)] = _IGNORE_INDEX
    return reduced


def _check_size_divisor(value: Any) -> None:
    """Reject anything but `None` or a positive `int` (bools are ints to Python, but never a divisor)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"size_divisor must be a positive integer (32 reproduces mmsegmentation's AlignedResize) or None for "
            f"no alignment; got {value!r}."
        )


class SegRetImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    do_reduce_labels (`bool`, *optional*, defaults to `self.do_reduce_labels`):
        Whether to reduce all label values of the segmentation maps by 1 and map 0 (background) to 255
        (ignore). Used for datasets such as ADE20K and COCO-Stuff where 0 marks unlabelled pixels that are
        not one of the classes. 255 stays 255.
    antialias (`bool`, *optional*, defaults to `self.antialias`):
        Whether to antialias when down-scaling images. `False` matches mmsegmentation's `cv2.INTER_LINEAR`
        resize used to evaluate SegRet; `True` matches PIL / SegFormer's processor.
    size_divisor (`int`, *optional*, defaults to `self.size_divisor`):
        After resizing to `size`, round each side up to a multiple of this and resize again (bilinear for
        images, nearest for maps) to that size, as mmsegmentation's `AlignedResize` does; `None` keeps the
        resized size. Only applies when `do_resize` is set.
    """

    do_reduce_labels: bool
    antialias: bool
    size_divisor: int | None


class SegRetImageProcessor(TorchvisionBackend):
    r"""
    Prepares images (and optionally segmentation maps) for SegRet and turns its logits back into maps.

    Defaults follow the mmsegmentation test pipeline of the paper: bilinear resize to `size`, rescale by
    1/255, normalise with ImageNet mean/std, RGB channel order.

    Args:
        do_resize (`bool`, *optional*, defaults to `True`):
            Whether to resize images (and segmentation maps) to `size`.
        size (`dict[str, int]`, *optional*, defaults to `{"height": 512, "width": 512}`):
            Output size. One of
            - `{"height": H, "width": W}`: exactly `H x W` (the SegFormer convention, what the
              `image-segmentation` pipeline expects, and what lets images of any size be batched);
            - `{"shortest_edge": N}`: keep the aspect ratio, short side becomes `N` (mmseg "short side to N");
            - `{"shortest_edge": N, "longest_edge": M}`: as above, but shrink further if the long side would
              exceed `M` (mmseg `Resize(scale=(M, N), keep_ratio=True)`, e.g. `N=512, M=2048` for ADE20K);
            - `{"longest_edge": M}`: keep the aspect ratio, long side becomes `M`;
            - `{"max_height": H, "max_width": W}`: keep the aspect ratio, largest size fitting in `H x W`.
        resample (`PILImageResampling`, *optional*, defaults to `PILImageResampling.BILINEAR`):
            Interpolation for images. Segmentation maps always use nearest-exact so no new labels appear.
        antialias (`bool`, *optional*, defaults to `False`):
            See [`SegRetImageProcessorKwargs`].
        size_divisor (`int`, *optional*, defaults to `None`):
            See [`SegRetImageProcessorKwargs`]. 32 for the paper's ADE20K and COCO-Stuff test protocol (e.g. a
            683x512 image is fed as 704x512); `None` (Cityscapes) resizes once.
        do_rescale (`bool`, *optional*, defaults to `True`):
            Whether to multiply pixel values by `rescale_factor`.
        rescale_factor (`float`, *optional*, defaults to `1/255`):
            Rescale factor. 16-bit inputs are first brought to the 0-255 range, so the same factor applies.
        do_normalize (`bool`, *optional*, defaults to `True`):
            Whether to normalise with `image_mean` / `image_std`.
        image_mean (`list[float]`, *optional*, defaults to ImageNet mean `[0.485, 0.456, 0.406]`):
        image_std (`list[float]`, *optional*, defaults to ImageNet std `[0.229, 0.224, 0.225]`):
        do_convert_rgb (`bool`, *optional*, defaults to `True`):
            Convert grayscale to 3 channels and drop an alpha channel, so every input has the 3 channels the
            backbone's stem expects.
        do_reduce_labels (`bool`, *optional*, defaults to `False`):
            See [`SegRetImageProcessorKwargs`].
    """

    valid_kwargs = SegRetImageProcessorKwargs
    model_input_names = ["pixel_values"]

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 512, "width": 512}
    default_to_square = True
    crop_size = None
    do_resize = True
    do_center_crop = None
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_reduce_labels = False
    antialias = False
    size_divisor = None

    def __init__(self, **kwargs: Unpack[SegRetImageProcessorKwargs]) -> None:
        # Accept the pre-v4.30 spelling still found in many SegFormer-derived preprocessor configs.
        if "reduce_labels" in kwargs:
            kwargs["do_reduce_labels"] = kwargs.pop("reduce_labels")
        super().__init__(**kwargs)
        _check_size_divisor(self.size_divisor)

    # ------------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------------

    def preprocess(
        self,
        images: ImageInput,
        segmentation_maps: ImageInput | None = None,
        **kwargs: Unpack[SegRetImageProcessorKwargs],
    ) -> BatchFeature:
        r"""
        Preprocess a single image or a batch of images, with optional segmentation maps.

        Args:
            images (`ImageInput`):
                PIL images (any mode: RGB, L, RGBA, P, I;16, I, ...), numpy arrays (HWC or CHW, HW for
                grayscale; uint8, uint16 or float in the 0-255 range) or torch tensors (CHW or HWC), or a list
                of them. Images in a batch may have different sizes.
            segmentation_maps (`ImageInput`, *optional*):
                One single-channel class-index map per image, pixel-aligned with it (same height and width):
                PIL `"L"`/`"P"`/`"I;16"`/`"I"` images, integer numpy arrays or tensors of shape `(H, W)`.
            **kwargs:
                Any constructor argument, overriding it for this call, plus `return_tensors` (`"pt"` or
                `"np"`), `device` and `disable_grouping`.

        Returns:
            [`BatchFeature`] with `pixel_values` (float32, `(batch, 3, H, W)` when `return_tensors="pt"`, else a
            list of `(3, H, W)` tensors) and, if maps were given, `labels` (int64, `(batch, H, W)` or a list).
        """
        return super().preprocess(images, segmentation_maps, **kwargs)

    def post_process_semantic_segmentation(
        self,
        outputs: Any,
        target_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        return_segmentation_scores: bool = False,
    ) -> list[torch.Tensor] | list[Any]:
        """
        Turn SegRet logits into per-pixel class maps (same contract as SegFormer's method).

        Args:
            outputs (`SemanticSegmenterOutput` or `torch.Tensor`):
                Model outputs with a `logits` field of shape `(batch, num_labels, h, w)`, or the logits tensor.
            target_sizes (`list[tuple[int, int]]` or `torch.Tensor` of shape `(batch, 2)`, *optional*):
                `(height, width)` per image, usually the original image sizes. Logits are resized to it
                (bilinear, `align_corners=False`, like mmsegmentation) *before* the argmax, which gives smoother
                boundaries than resizing the argmax. If unset, maps are returned at the logits' resolution.
            return_segmentation_scores (`bool`, *optional*, defaults to `False`):
                Whether to return, per image, an object with `segmentation` (class ids, `(height, width)`) and
                `segmentation_scores` (the resized logits, `(num_labels, height, width)`) instead of only the map.

        Returns:
            `list[torch.Tensor]` of int64 `(height, width)` maps, one per image, or a list of
            `SemanticSegmentationPostProcessorOutput` when `return_segmentation_scores=True`.
        """
        if isinstance(outputs, torch.Tensor):
            logits = outputs
        elif hasattr(outputs, "logits"):
            logits = outputs.logits
        elif isinstance(outputs, Mapping):
            logits = outputs.get("logits")
        else:
            logits = None
        if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
            raise ValueError(
                "`outputs` must be the model output (with a `logits` tensor of shape (batch, num_labels, height, "
                f"width)) or that tensor itself; got {type(outputs).__name__}"
                + (f" with logits of shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else "")
                + "."
            )
        # Half-precision bilinear interpolation is slow or unsupported on CPU and its rounding can flip
        # near-tied argmaxes; upcast there.
        if logits.device.type == "cpu" and logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()

        batch_size = logits.shape[0]
        if target_sizes is not None:
            if isinstance(target_sizes, torch.Tensor):
                target_sizes = target_sizes.tolist()
            if len(target_sizes) != batch_size:
                raise ValueError(
                    f"Got {len(target_sizes)} target sizes for a batch of {batch_size} logits. Pass one "
                    "(height, width) per image, in the same order as the images."
                )
            scores = []
            for idx, target_size in enumerate(target_sizes):
                if len(target_size) != 2:
                    raise ValueError(f"target_sizes[{idx}] must be (height, width), got {target_size!r}.")
                height, width = (int(v) for v in target_size)
                scores.append(
                    F.interpolate(
                        logits[idx : idx + 1], size=(height, width), mode="bilinear", align_corners=False
                    )[0]
                )
        else:
            scores = list(logits)

        segmentations = [score.argmax(dim=0) for score in scores]
        if not return_segmentation_scores:
            return segmentations
        if SemanticSegmentationPostProcessorOutput is None:  # pragma: no cover - transformers 5.0
            return [BatchFeature({"segmentation": s, "segmentation_scores": p}) for s, p in zip(segmentations, scores)]
        return [
            SemanticSegmentationPostProcessorOutput(data={"segmentation": s, "segmentation_scores": p})
            for s, p in zip(segmentations, scores)
        ]

    def reduce_label(self, labels: list[torch.Tensor]) -> list[torch.Tensor]:
        """
        Map 0 -> 255 (ignore) and every other label `l` -> `l - 1`, keeping 255 as 255.

        ADE20K / COCO-Stuff annotations use 0 for "unlabelled", which is not one of the model's classes; after
        this mapping class ids start at 0 and unlabelled pixels carry the usual ignore index 255.
        """
        return [reduce_label_ids(label) for label in labels]

    @staticmethod
    def get_output_size(height: int, width: int, size: SizeDict | dict[str, int]) -> tuple[int, int]:
        """
        Return the `(height, width)` an image of `height x width` is resized to for the given `size`.

        Keep-ratio rules follow mmcv's `rescale_size` (scale factor = the most restrictive constraint, each side
        rounded half up) so that "short side to N" reproduces mmsegmentation's test resolutions exactly.
        """
        get = size.get
        if get("height") and get("width"):
            return int(get("height")), int(get("width"))
        if get("shortest_edge") or get("longest_edge"):
            scale = float("inf")
            if get("shortest_edge"):
                scale = get("shortest_edge") / min(height, width)
            if get("longest_edge"):
                scale = min(scale, get("longest_edge") / max(height, width))
        elif get("max_height") and get("max_width"):
            scale = min(get("max_height") / height, get("max_width") / width)
        else:
            raise ValueError(
                f"Unsupported size {dict(size)}. Use {{'height': H, 'width': W}}, {{'shortest_edge': N}}, "
                "{'shortest_edge': N, 'longest_edge': M}, {'longest_edge': M} or {'max_height': H, 'max_width': W}."
            )
        return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))

    @staticmethod
    def get_aligned_size(height: int, width: int, size_divisor: int) -> tuple[int, int]:
        """Return `(height, width)` each rounded up to a multiple of `size_divisor` (mmseg `AlignedResize`)."""
        return -(-height // size_divisor) * size_divisor, -(-width // size_divisor) * size_divisor

    # ------------------------------------------------------------------------------------------------
    # Backend overrides
    # ------------------------------------------------------------------------------------------------

    def _validate_preprocess_kwargs(self, size_divisor: int | None = None, **kwargs: Any) -> None:
        """The backend's checks, plus `size_divisor` (which may also be overridden per call)."""
        super()._validate_preprocess_kwargs(**kwargs)
        _check_size_divisor(size_divisor)

    def resize(
        self,
        image: torch.Tensor,
        size: SizeDict,
        resample: Any = None,
        antialias: bool = True,
        size_divisor: int | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """
        Resize `(..., H, W)` tensors to [`get_output_size`] (keep-ratio aware), then, with `size_divisor`, to
        [`get_aligned_size`] of that. The second step is a separate interpolation of the first one's output, as
        in mmsegmentation, not one resize straight to the aligned size; each step is skipped when it would not
        change the size.
        """
        height, width = image.shape[-2:]
        target = self.get_output_size(height, width, size)
        targets = [target]
        if size_divisor:
            targets.append(self.get_aligned_size(*target, size_divisor))
        for new_height, new_width in targets:
            if (new_height, new_width) != tuple(image.shape[-2:]):
                image = super().resize(
                    image, SizeDict(height=new_height, width=new_width), resample=resample, antialias=antialias
                )
        return image

    def convert_to_rgb(
        self, image: torch.Tensor, input_data_format: str | ChannelDimension | None = None
    ) -> torch.Tensor:
        """
        Make an image 3-channel: repeat a single channel, drop an alpha channel.

        Alpha is dropped, not composited onto white as the stock backend does, because mmsegmentation reads
        images with `cv2.imread(IMREAD_COLOR)`, which ignores alpha.
        """
        if image.ndim == 2:
            image = image[None]
            input_data_format = ChannelDimension.FIRST
        if input_data_format is None:
            input_data_format = infer_channel_dimension_format(image, num_channels=(1, 3, 4))
        channel_axis = -1 if input_data_format == ChannelDimension.LAST else -3
        num_channels = image.shape[channel_axis]
        if num_channels == 1:
            image = torch.cat([image] * 3, dim=channel_axis)
        elif num_channels == 4:
            image = image.narrow(channel_axis, 0, 3)
        return image

    def process_image(
        self,
        image: ImageInput,
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """
        Convert one raw image to a channels-first tensor, handling 16-bit data and alpha as documented above.
        """
        if isinstance(image, PIL.Image.Image):
            if image.mode in _PIL_16BIT_MODES:
                image = _pil_integer_pixels(image)
            elif image.mode == "F":
                # 32-bit float PIL images carry 0-255 intensities; `convert("RGB")` would truncate them.
                image = np.array(image, dtype=np.float32)
            elif do_convert_rgb:
                # PIL's own conversion handles palettes ("P"), "CMYK", "YCbCr", "LA" ... and drops alpha.
                image = np.array(image.convert("RGB"))
                input_data_format = ChannelDimension.LAST
            else:
                image = np.array(image)
                if image.ndim == 3:
                    input_data_format = ChannelDimension.LAST
        if isinstance(image, np.ndarray):
            if image.dtype == np.uint16:
                image = image.astype(np.float32) * _UINT16_TO_8BIT_RANGE
            elif image.dtype != np.uint8 and image.dtype != np.float32:
                # torch has few kernels for other integer/bool/float64 types; values are kept as they are.
                image = image.astype(np.float32)
            if not image.flags.writeable:
                image = image.copy()  # torch warns on read-only arrays
            image = torch.from_numpy(np.ascontiguousarray(image))
        if isinstance(image, torch.Tensor):
            if image.dtype == torch.uint16:
                image = image.to(torch.float32) * _UINT16_TO_8BIT_RANGE
            elif image.dtype not in (torch.uint8, torch.float32):
                image = image.to(torch.float32)
        else:
            raise ValueError(
                f"Unsupported image type {type(image).__name__}; pass PIL images, numpy arrays or torch tensors."
            )

        if image.ndim == 2:
            image = image[None]
            input_data_format = ChannelDimension.FIRST
        if image.ndim != 3:
            raise ValueError(
                f"Expected an image of shape (H, W), (H, W, C) or (C, H, W); got shape {tuple(image.shape)}. "
                "Pass batches as a list of images or a 4D array/tensor."
            )
        if image.numel() == 0:
            raise ValueError(
                f"Got an image of shape {tuple(image.shape)}, which has no pixels; every image needs a height and "
                "a width of at least 1."
            )
        if input_data_format is None:
            input_data_format = infer_channel_dimension_format(image, num_channels=(1, 3, 4))
        if input_data_format == ChannelDimension.LAST:
            image = image.permute(2, 0, 1)
        if do_convert_rgb:
            image = self.convert_to_rgb(image, input_data_format=ChannelDimension.FIRST)
        image = image.contiguous()
        if device is not None:
            image = image.to(device)
        return image

    def _prepare_images_structure(self, images: ImageInput, expected_ndims: int = 3) -> ImageInput:
        """Like the base class, but also accept 2D (H, W) grayscale arrays/tensors, alone or in a list."""
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == expected_ndims - 1:
            return [images]
        if (
            isinstance(images, (list, tuple))
            and len(images) > 0
            and all(isinstance(im, (np.ndarray, torch.Tensor, PIL.Image.Image)) for im in images)
            and any(getattr(im, "ndim", None) == expected_ndims - 1 for im in images)
        ):
            return list(images)
        return super()._prepare_images_structure(images, expected_ndims=expected_ndims)

    def _preprocess_image_like_inputs(
        self,
        images: ImageInput,
        segmentation_maps: ImageInput | None,
        do_convert_rgb: bool,
        input_data_format: ChannelDimension | None,
        return_tensors: str | TensorType | None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Prepare images and (optional) maps, check they correspond, and run both through `_preprocess`."""
        if not (isinstance(images, (list, tuple)) and len(images) == 0):
            images = self._prepare_images_structure(images)
        if len(images) == 0:
            raise ValueError("No images given: pass one image, or a non-empty list (or batch) of images.")
        if kwargs.get("do_rescale") and any(_looks_rescaled(image) for image in images):
            logger.warning_once(
                "It looks like you are trying to rescale already rescaled images: float pixel values all lie in "
                "[0, 1], and they are multiplied by rescale_factor (1/255) again, which gives a near-black image. "
                "If the images are in [0, 1], pass do_rescale=False (or give 0-255 values)."
            )
        images = self._prepare_image_like_inputs(
            images=images, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format, device=device
        )
        data = {}
        images_kwargs = {**kwargs, "do_reduce_labels": False}
        data["pixel_values"] = self._preprocess(images, **images_kwargs)

        if segmentation_maps is not None:
            maps = self._prepare_segmentation_maps(segmentation_maps, device=device)
            if len(maps) != len(images):
                raise ValueError(
                    f"Got {len(images)} image(s) but {len(maps)} segmentation map(s). Pass exactly one "
                    "segmentation map per image, in the same order. Note that a 3D array/tensor is read as a "
                    "batch of (height, width) maps, so a colour-coded (H, W, 3) mask must first be converted "
                    "to class indices."
                )
            for idx, (image, seg_map) in enumerate(zip(images, maps)):
                if tuple(image.shape[-2:]) != tuple(seg_map.shape[-2:]):
                    raise ValueError(
                        f"Image {idx} is {tuple(image.shape[-2:])} (height, width) but its segmentation map is "
                        f"{tuple(seg_map.shape[-2:])}. Maps must be pixel-aligned with their images; resize or "
                        "crop them to the image size (with nearest-neighbour interpolation) before calling the "
                        "processor."
                    )
            maps_kwargs = {
                **kwargs,
                "do_rescale": False,
                "do_normalize": False,
                # Nearest-exact keeps labels valid (no interpolated class ids) and matches PIL's NEAREST.
                "resample": tvF.InterpolationMode.NEAREST_EXACT,
            }
            data["labels"] = [m.squeeze(0) for m in self._preprocess(maps, **maps_kwargs)]

        if return_tensors is not None:
            for key, values in data.items():
                shapes = {tuple(v.shape) for v in values}
                if len(shapes) > 1:
                    raise ValueError(
                        f"Cannot stack `{key}` into one tensor: the processed images have different shapes "
                        f"{sorted(shapes)}. This happens with a keep-ratio `size` (shortest_edge/longest_edge/"
                        "max_height) or `do_resize=False` on images of different sizes. Use a fixed size such as "
                        "size={'height': 512, 'width': 512}, process the images one at a time, or pass "
                        "return_tensors=None to get lists."
                    )
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _prepare_segmentation_maps(
        self, segmentation_maps: ImageInput, device: str | torch.device | None = None
    ) -> list[torch.Tensor]:
        """Convert segmentation maps to `(1, H, W)` int64 tensors, rejecting anything that is not class ids."""
        if isinstance(segmentation_maps, (str, os.PathLike)) or (
            isinstance(segmentation_maps, (list, tuple))
            and any(isinstance(m, (str, os.PathLike)) for m in segmentation_maps)
        ):
            # Load paths with PIL so "P"/"I;16" maps keep their indices (the default loader decodes to RGB).
            if isinstance(segmentation_maps, (str, os.PathLike)):
                segmentation_maps = [segmentation_maps]
            segmentation_maps = [
                PIL.Image.open(m) if isinstance(m, (str, os.PathLike)) else m for m in segmentation_maps
            ]
        maps = self._prepare_images_structure(segmentation_maps, expected_ndims=2)

        prepared = []
        for idx, seg_map in enumerate(maps):
            if isinstance(seg_map, PIL.Image.Image):
                seg_map = index_map_pixels(seg_map, f"Segmentation map {idx}")
            if isinstance(seg_map, np.ndarray):
                if seg_map.dtype == np.uint16 or seg_map.dtype == np.uint32 or seg_map.dtype == bool:
                    seg_map = seg_map.astype(np.int64)
                if not seg_map.flags.writeable:
                    seg_map = seg_map.copy()
                seg_map = torch.from_numpy(np.ascontiguousarray(seg_map))
            if not isinstance(seg_map, torch.Tensor):
                raise ValueError(
                    f"Unsupported segmentation map type {type(seg_map).__name__}; pass PIL images, numpy arrays "
                    "or torch tensors."
                )
            seg_map = single_channel_map(seg_map, f"Segmentation map {idx}")
            if seg_map.is_floating_point():
                if not torch.equal(seg_map, seg_map.round()):
                    raise ValueError(
                        f"Segmentation map {idx} contains non-integer values; maps must hold integer class ids."
                    )
            seg_map = seg_map.to(torch.int64)[None]
            if device is not None:
                seg_map = seg_map.to(device)
            prepared.append(seg_map)
        return prepared

    def _preprocess(
        self,
        images: list[torch.Tensor],
        do_reduce_labels: bool,
        resample: Any,
        do_resize: bool,
        do_rescale: bool,
        do_normalize: bool,
        size: SizeDict,
        rescale_factor: float,
        image_mean: float | list[float],
        image_std: float | list[float],
        disable_grouping: bool | None,
        antialias: bool | None = None,
        size_divisor: int | None = None,
        **kwargs: Any,
    ) -> list[torch.Tensor]:
        """Reduce labels (maps), resize (and align), rescale and normalise a list of channels-first tensors."""
        if do_reduce_labels:
            images = self.reduce_label(images)
        is_label = not torch.is_floating_point(images[0]) and images[0].dtype != torch.uint8
        if not is_label:
            # Resize images in float32: no uint8 intermediate rounding, one path for 8- and 16-bit inputs.
            images = [image.to(torch.float32) for image in images]
        antialias = bool(antialias) and not is_label

        if do_resize:
            grouped, index = group_images_by_shape(images, disable_grouping=disable_grouping)
            resized = {
                shape: self.resize(
                    stacked, size=size, resample=resample, antialias=antialias, size_divisor=size_divisor
                )
                for shape, stacked in grouped.items()
            }
            images = reorder_images(resized, index)

        if do_rescale or do_normalize:
            grouped, index = group_images_by_shape(images, disable_grouping=disable_grouping)
            processed = {
                shape: self.rescale_and_normalize(
                    stacked, do_rescale, rescale_factor, do_normalize, image_mean, image_std
                )
                for shape, stacked in grouped.items()
            }
            images = reorder_images(processed, index)
        return images
