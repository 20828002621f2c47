"""mmseg's `PhotoMetricDistortion` on 8-bit images, computed exactly.

mmseg 0.x keeps the image in uint8 through this step: every operation converts to float, computes, clips to
[0, 255] and converts back to uint8, in this order:

1. brightness `+ U(-32, 32)` (p=0.5),
2. contrast `x U(0.5, 1.5)` (p=0.5) here *or* after step 4 (coin flip),
3. saturation: HSV's S channel `x U(0.5, 1.5)`, clipped to 1 (p=0.5),
4. hue: HSV's H channel shifted by an integer of OpenCV units (2 degrees) in [-18, 18) (p=0.5).

Brightness and contrast truncate (`astype(np.uint8)`), so each maps the 256 grey levels to 256 grey levels:
they are applied as one lookup table (two when contrast comes last). Saturation and hue are computed on a
continuous H and S (OpenCV's 8-bit HSV would additionally quantise H to 2 degrees and S to 1/255 inside the
step) and rounded back to uint8, as `hsv2bgr` rounds (half up here). Both are computed in arithmetic that is
exact for 8-bit inputs, so no result depends on float rounding: on integers held in float32, or on a table
computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18  # OpenCV hue units (degrees / 2), as mmseg uses

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


def _affine_lut(levels: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """mmseg's `convert` on a table of grey levels: float32 `x * alpha + beta`, clip, truncate to uint8."""
    return np.clip(levels.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def _apply_lut(image: torch.Tensor, lut: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.take(lut, image.numpy()))


def saturate(image: torch.Tensor, alpha: float) -> torch.Tensor:
    """Scale HSV saturation by `alpha` (clipped to 1) on a `(3, H, W)` uint8 RGB image, rounding half up.

    With value `v = max`, `m = min` and chroma `d = v - m`, hue and value stay and every channel moves away
    from `v` by the saturation ratio: `c' = v - (v - c) * alpha`, or `c' = v * (c - m) / d` where the
    saturation clips to 1. The clipped form is the larger one exactly where it applies, so the result is the
    maximum of both, each rounded exactly: the first as `v - ceil((v - c) * alpha - 0.5)` from a 256-entry
    table (computed in float64, where it is exact), the second as `floor((2 v (c - m) + d) / 2d)`, a
    correctly rounded division of integers held exactly in float32.
    """
    steps = np.ceil(np.arange(256) * alpha - 0.5).astype(np.float32)
    value_u8, darkest_u8 = image.amax(dim=0), image.amin(dim=0)
    value = value_u8.to(torch.float32)
    clips = alpha > 1  # alpha * d >= v needs alpha > 1, except where both forms agree (d = v, alpha = 1)
    if clips:
        chroma = value - darkest_u8.to(torch.float32)
        twice_value, denominator = 2 * value, (2 * chroma).clamp_min_(1)
    output = torch.empty_like(image)
    # Plane by plane, in place where possible: same-shaped contiguous operands run fastest.
    for channel, plane in enumerate(image):
        result = torch.from_numpy(np.take(steps, (value_u8 - plane).numpy()))
        torch.sub(value, result, out=result)
        if clips:
            clipped = (plane - darkest_u8).to(torch.float32)
            clipped.mul_(twice_value).add_(chroma).div_(denominator).floor_()
            torch.maximum(result, clipped, out=result)
        output[channel] = result
    return output


def rotate_hue(image: torch.Tensor, shift: int) -> torch.Tensor:
    """Rotate HSV hue by `shift` OpenCV units (2 degrees each) on a `(3, H, W)` uint8 RGB image.

    With value `v = max` and chroma `d = v - min`, hue is carried as `30 * d * (hue / 60 degrees)`, an integer
    (held exactly in float32), so RGB -> HSV -> RGB is integer arithmetic: channel n (5, 3, 1 for red, green,
    blue) becomes `v - t / 30` with `t = clamp(60 d - |x|, 0, 30 d)`, `x` the rotated hue plus `30 d (n - 2)`
    taken modulo `180 d` into [-90 d, 90 d), and is rounded half up as `floor((30 v + 15 - t) / 30)`.
    """
    red, green, blue = image.to(torch.float32).unbind(0)
    value = torch.maximum(torch.maximum(red, green), blue)
    chroma = value - torch.minimum(torch.minimum(red, green), blue)
    # Hue times chroma in sextants: r - g + 4d where blue is the maximum, corrected where green is, then
    # where red is (OpenCV's order: red is the maximum first, then green, then blue).
    is_red = torch.eq(value, red, out=torch.empty_like(value))
    is_green = torch.eq(value, green, out=torch.empty_like(value)).sub_(is_red).clamp_(min=0)
    hue = torch.add(red - green, chroma, alpha=4)
    hue.addcmul_(is_green, (blue + green).sub_(red, alpha=2).sub_(chroma, alpha=2))
    hue.addcmul_(is_red, (2 * green).sub_(blue).sub_(red).sub_(chroma, alpha=4))
    hue.mul_(30).add_(chroma, alpha=shift)
    period, half_period, sixty, thirty = 180 * chroma, 90 * chroma, 60 * chroma, 30 * chroma
    numerator = 30 * value + 15
    output = torch.empty_like(image)
    wraps = torch.empty_like(value)
    for channel, offset in enumerate((5, 3, 1)):
        position = torch.add(hue, chroma, alpha=30 * (offset - 2))
        position.addcmul_(torch.ge(position, half_period, out=wraps), period, value=-1)
        step = torch.sub(sixty, position.abs_(), out=position).clamp_(min=0)
        torch.minimum(step, thirty, out=step)
        output[channel] = torch.sub(numerator, step, out=step).div_(30)
    return output


def photometric_distortion(image: torch.Tensor, params: PhotometricParams) -> torch.Tensor:
    """Apply the drawn distortion to a `(3, H, W)` uint8 RGB image; returns a contiguous uint8 image."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) uint8 image, got {tuple(image.shape)} {image.dtype}")
    lut = None
    if params.brightness is not None:
        lut = _affine_lut(_GREY_LEVELS, beta=params.brightness)
    if params.contrast_first and params.contrast is not None:
        lut = _affine_lut(_GREY_LEVELS if lut is None else lut, alpha=params.contrast)
    image = image.contiguous() if lut is None else _apply_lut(image, lut)
    if params.saturation is not None:
        image = saturate(image, params.saturation)
    if params.hue is not None:
        image = rotate_hue(image, params.hue)
    if not params.contrast_first and params.contrast is not None:
        image = _apply_lut(image, _affine_lut(_GREY_LEVELS, alpha=params.contrast))
    return image
