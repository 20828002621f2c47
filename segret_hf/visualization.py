"""Pictures of segmentations: colour maps, overlays with a legend, and image | label | prediction strips.

Colours come from the dataset the model was trained on when its class names say which one (ADE20K,
Cityscapes and COCO-Stuff palettes, so pictures look like the ones in papers and mmsegmentation), and from
a deterministic generic palette otherwise, so the same class always gets the same colour across runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

from .data.label_sets import ADE20K, CITYSCAPES, COCO_STUFF, IGNORE_INDEX, Color, LabelSet, generate_palette

PALETTE_LABEL_SETS: tuple[LabelSet, ...] = (ADE20K, CITYSCAPES, COCO_STUFF)
"""Datasets whose palettes are recognised from a model's class names."""

MIN_NAME_AGREEMENT = 0.9
"""Fraction of class names that must agree (after normalisation) to adopt a dataset's palette. Not 1.0
because Hub configs spell a few names differently (e.g. trailing spaces, "windowpane" vs "window")."""

IGNORE_COLOR: Color = (0, 0, 0)
"""Colour of ignored (255) or unknown pixels in colour maps."""


def _normalise(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def palette_for_labels(id2label: Mapping[int, str]) -> tuple[list[Color], str | None]:
    """`(palette indexed by class id, name of the dataset it came from or None for the generic one)`."""
    names = [_normalise(str(id2label[index])) for index in sorted(id2label)]
    for label_set in PALETTE_LABEL_SETS:
        if len(label_set.class_names) != len(names):
            continue
        agree = sum(a == _normalise(b) for a, b in zip(names, label_set.class_names))
        if agree >= MIN_NAME_AGREEMENT * len(names):
            return list(label_set.palette), label_set.name
    return generate_palette(len(names)), None


def _as_array(segmentation: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(segmentation, torch.Tensor):
        segmentation = segmentation.cpu().numpy()
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2:
        raise ValueError(f"Expected a (height, width) class-id map, got shape {segmentation.shape}.")
    return segmentation.astype(np.int64, copy=False)


def colorize(
    segmentation: np.ndarray | torch.Tensor, palette: Sequence[Color], ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """`(H, W, 3)` uint8 colour map; `ignore_index` and ids outside the palette are drawn black."""
    segmentation = _as_array(segmentation)
    table = np.array(list(palette) + [IGNORE_COLOR], dtype=np.uint8)
    unknown = (segmentation < 0) | (segmentation >= len(palette)) | (segmentation == ignore_index)
    return table[np.where(unknown, len(palette), segmentation)]


def _rgb(image: Any) -> np.ndarray:
    """`(H, W, 3)` uint8 copy of a PIL image or an RGB / grayscale array."""
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array[..., :3].astype(np.uint8)


def overlay(
    image: Any,
    segmentation: np.ndarray | torch.Tensor,
    palette: Sequence[Color],
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> PIL.Image.Image:
    """The image with class colours blended in at `alpha`; ignored pixels keep the image as is."""
    pixels = _rgb(image).astype(np.float32)
    segmentation = _as_array(segmentation)
    if pixels.shape[:2] != segmentation.shape:
        raise ValueError(f"Image is {pixels.shape[:2]} but the segmentation is {segmentation.shape} (height, width).")
    colours = colorize(segmentation, palette, ignore_index).astype(np.float32)
    blend = np.where((segmentation == ignore_index)[..., None], pixels, (1 - alpha) * pixels + alpha * colours)
    return PIL.Image.fromarray(np.clip(blend + 0.5, 0, 255).astype(np.uint8))


def classes_by_area(
    segmentation: np.ndarray | torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> list[tuple[int, float]]:
    """`(class id, fraction of labelled pixels)` of the classes present, largest first."""
    segmentation = _as_array(segmentation)
    ids, counts = np.unique(segmentation[segmentation != ignore_index], return_counts=True)
    total = counts.sum()
    order = np.argsort(-counts, kind="stable")
    return [(int(ids[i]), float(counts[i] / total)) for i in order]


def draw_legend(image: PIL.Image.Image, entries: Sequence[tuple[str, Color]]) -> PIL.Image.Image:
    """A copy of `image` with a legend box (colour swatch + name per entry) in its top-left corner.

    Drawn inside the picture so the output keeps the input's size; entries that do not fit are summarised
    as "+N more". The font scales with the image so the legend stays readable on large photos.
    """
    canvas = image.convert("RGBA")
    width, height = canvas.size
    font_size = int(np.clip(min(width, height) / 40, 10, 28))
    font = PIL.ImageFont.load_default(size=font_size)
    pad, row = max(2, font_size // 3), font_size + max(2, font_size // 3)
    max_rows = max(1, (height - 3 * pad) // row)
    lines: list[tuple[str, Color | None]] = list(entries)
    if len(lines) > max_rows:
        hidden = len(lines) - (max_rows - 1)
        lines = lines[: max_rows - 1] + [(f"+{hidden} more", None)]
    layer = PIL.Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = PIL.ImageDraw.Draw(layer)
    text_width = max((draw.textlength(name, font=font) for name, _ in lines), default=0)
    box_width = int(pad * 3 + font_size + text_width)
    draw.rectangle([pad, pad, pad + box_width, pad + 2 * pad + row * len(lines)], fill=(0, 0, 0, 160))
    for index, (name, colour) in enumerate(lines):
        top = 2 * pad + index * row
        if colour is not None:
            swatch = [2 * pad, top, 2 * pad + font_size, top + font_size]
            draw.rectangle(swatch, fill=(*colour, 255), outline=(255, 255, 255, 255))
        draw.text((3 * pad + font_size, top), name, font=font, fill=(255, 255, 255, 255))
    return PIL.Image.alpha_composite(canvas, layer).convert("RGB")


def render_segmentation(
    image: Any,
    segmentation: np.ndarray | torch.Tensor,
    id2label: Mapping[int, str],
    palette: Sequence[Color] | None = None,
    alpha: float = 0.5,
) -> PIL.Image.Image:
    """Overlay plus a legend of the classes found (largest area first), same size as `image`."""
    if palette is None:
        palette, _ = palette_for_labels(id2label)
    picture = overlay(image, segmentation, palette, alpha=alpha)
    entries = [
        (f"{id2label.get(class_id, class_id)} ({100 * fraction:.1f}%)", tuple(palette[class_id]))
        for class_id, fraction in classes_by_area(segmentation)
        if 0 <= class_id < len(palette)
    ]
    return draw_legend(picture, entries)


def side_by_side(
    image: Any,
    label: np.ndarray | torch.Tensor,
    prediction: np.ndarray | torch.Tensor,
    palette: Sequence[Color],
    ignore_index: int = IGNORE_INDEX,
) -> PIL.Image.Image:
    """One strip `image | label | prediction` (colour maps, ignored pixels black) for eyeballing errors."""
    panels = [_rgb(image), colorize(label, palette, ignore_index), colorize(prediction, palette, ignore_index)]
    shapes = {panel.shape for panel in panels}
    if len(shapes) != 1:
        raise ValueError(f"Image, label and prediction must have the same size, got {[p.shape[:2] for p in panels]}.")
    return PIL.Image.fromarray(np.concatenate(panels, axis=1))
