"""mmseg's `PhotoMetricDistortion` on 8-bit images, with the OpenCV kernels mmseg itself runs.

mmseg 0.x keeps the image in uint8 through this step: every operation converts to float, computes, clips to
[0, 255] and converts back to uint8, in this order:

1. brightness `+ U(-32, 32)` (p=0.5),
2. contrast `x U(0.5, 1.5)` (p=0.5) here *or* after step 4 (coin flip),
3. saturation: `bgr2hsv` (OpenCV's 8-bit HSV), S `x U(0.5, 1.5)` as in steps 1-2, `hsv2bgr` (p=0.5),
4. hue: `bgr2hsv`, H shifted by an integer in [-18, 18) modulo 180 (OpenCV units of 2 degrees), `hsv2bgr`
   (p=0.5).

Each of these maps the 256 values of a channel to 256 values, so each is applied as a lookup table (brightness
and contrast merged into one when contrast comes first), computed with mmseg's float32 `convert` (truncating).
The HSV round trips are `cv2.cvtColor` on uint8 as in mmcv, so their quantisation (H to 2 degrees, S to
1/255, inside each step) is the original training's. The image is RGB here, BGR in mmseg: OpenCV's RGB and
BGR conversions are the same computation with the channels named the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .kernels import apply_lut, in_hsv

BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18  # OpenCV hue units (degrees / 2), as mmseg uses
HUE_PERIOD = 180  # OpenCV's 8-bit hue range

_GREY_LEVELS = np.arange(256, dtype=np.float32)


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=generator))


def _coin(generator: torch.Generator) -> bool:
    return bool(torch.randint(2, (), generator=generator))


@dataclass(frozen=True)
class PhotometricParams:
    """One sample's draws; `None` where the operation is skipped."""

    brightness: float | None
    contrast_first: bool
    contrast: float | None
    saturation: float | None
    hue: int | None

    @classmethod
    def draw(cls, generator: torch.Generator) -> PhotometricParams:
        """Draw every decision up front, in a fixed order, so that a sample's seed fixes all of them."""
        return cls(
            brightness=_uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA, generator) if _coin(generator) else None,
            contrast_first=_coin(generator),
            contrast=_uniform(*CONTRAST_RANGE, generator) if _coin(generator) else None,
            saturation=_uniform(*SATURATION_RANGE, generator) if _coin(generator) else None,
            hue=int(torch.randint(-HUE_DELTA, HUE_DELTA, (), generator=generator)) if _coin(generator) else None,
        )


def affine_lut(levels: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """mmseg's `convert` on a table of values: float32 `x * alpha + beta`, clip, truncate to uint8."""
    return np.clip(levels.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def hue_lut(shift: int) -> np.ndarray:
    """mmseg's hue step on a table of 8-bit hues: `(h + shift) % 180`."""
    return ((np.arange(256) + shift) % HUE_PERIOD).astype(np.uint8)


def photometric_distortion(image: np.ndarray, params: PhotometricParams) -> np.ndarray:
    """Apply the drawn distortion to an `(H, W, 3)` uint8 RGB image; returns a uint8 image (maybe `image`)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    lut = None
    if params.brightness is not None:
        lut = affine_lut(_GREY_LEVELS, beta=params.brightness)
    if params.contrast_first and params.contrast is not None:
        lut = affine_lut(_GREY_LEVELS if lut is None else lut, alpha=params.contrast)
    if lut is not None:
        image = apply_lut(image, lut)
    if params.saturation is not None:
        image = in_hsv(image, 1, affine_lut(_GREY_LEVELS, alpha=params.saturation))
    if params.hue is not None:
        image = in_hsv(image, 0, hue_lut(params.hue))
    if not params.contrast_first and params.contrast is not None:
        image = apply_lut(image, affine_lut(_GREY_LEVELS, alpha=params.contrast))
    return image
