"""The pixel kernels of the training augmentation: OpenCV's, as mmcv calls them for mmseg's pipeline.

mmseg trains on what OpenCV computes: `mmcv.imrescale` is `cv2.resize` (`INTER_LINEAR` for images,
`INTER_NEAREST` for label maps) and `mmcv.bgr2hsv` / `hsv2bgr` are `cv2.cvtColor` on uint8 (8-bit HSV: H in
[0, 180), S and V in [0, 255]). Calling the same kernels reproduces the original training's pixels, and they
are the fastest available on 8-bit images (fixed-point SIMD code).

OpenCV is made single-threaded when this module is imported, as mmseg's training entry point does
(`opencv_num_threads=0`): the loader's parallelism is its worker processes, one per core, and each worker's
OpenCV starting a thread per core would oversubscribe them. Worker processes import this module (spawn) or
inherit the setting (fork).
"""

from __future__ import annotations

import cv2
import numpy as np

cv2.setNumThreads(0)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`cv2.resize(INTER_LINEAR)` of an `(H, W, 3)` uint8 image to `size = (height, width)`."""
    if image.shape[:2] == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def nearest_indices(source: int, target: int) -> np.ndarray:
    """Source index of every target pixel of `cv2.resize(INTER_NEAREST)` from `source` to `target` pixels.

    OpenCV computes `floor(i * (source / target))` in floating point, which differs from the exact integer
    rule where that product should be an integer; resizing the indices themselves gives its rule exactly.
    """
    indices = np.arange(source, dtype=np.int32)[None]
    return cv2.resize(indices, (target, 1), interpolation=cv2.INTER_NEAREST)[0]


def apply_lut(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Every channel of a uint8 image through one 256-entry uint8 table."""
    return cv2.LUT(image, table)


def in_hsv(image: np.ndarray, channel: int, table: np.ndarray) -> np.ndarray:
    """mmseg's HSV steps on an `(H, W, 3)` uint8 RGB image: `cvtColor` to 8-bit HSV, one HSV channel (0: hue,
    1: saturation) through `table`, and back to RGB (a new array). The channel is looked up as its own plane,
    which is faster than a three-table `LUT` over the interleaved image."""
    planes = list(cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV)))
    planes[channel] = cv2.LUT(planes[channel], table)
    return cv2.cvtColor(cv2.merge(planes), cv2.COLOR_HSV2RGB)


def flip_horizontal(image: np.ndarray) -> np.ndarray:
    """`(H, W, C)` image mirrored left to right, as a new contiguous array (`cv2.flip`)."""
    return cv2.flip(image, 1)


def channel_planes(image: np.ndarray) -> tuple[np.ndarray, ...]:
    """The channels of an `(H, W, C)` image as contiguous `(H, W)` planes (`cv2.split`)."""
    return cv2.split(image)


def normalise_into(plane: np.ndarray, mean: float, std: float, out: np.ndarray) -> None:
    """`(plane - mean) / std` of a uint8 plane, written as float32 into `out` (a view of the same shape), in one
    pass: `cv2.addWeighted` computes `plane / std - mean / std` (equal up to float32 rounding)."""
    cv2.addWeighted(plane, 1 / std, plane, 0, -mean / std, dst=out, dtype=cv2.CV_32F)
