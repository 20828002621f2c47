"""One image/annotation pair -> one checked dataset row, with the image's bytes copied as they are.

Images are read through once to prove they are readable and to learn their size, then stored byte for byte
(re-encoding a JPEG would lose quality and change every benchmark number). Reading through is cheaper than
decoding: a PNG's chunks are checked against their CRCs up to the final IEND chunk, a JPEG is decoded at
1/8 scale, which still consumes its whole compressed stream; both catch truncated and corrupted files. PNG annotations are copied as
well, unless the row stores train ids; COCO-Stuff-10k's `.mat` label arrays are written as PNG.
"""

from __future__ import annotations

import io
import warnings
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import PIL.Image

from ..label_maps import LabelMapError, label_map_array
from .errors import DatasetPreparationError
from .layouts import DatasetLayout, Pair
from .sources import FileRef, SourceFiles

PREPARE_EXTRA_HINT = "pip install 'segret-hf[prepare]'"
"""How to install what reading COCO-Stuff-10k's .mat annotations needs (scipy)."""


def require_scipy() -> Any:
    """`scipy.io`, or a DatasetPreparationError that says how to install it."""
    try:
        import scipy.io
    except ImportError as error:
        raise DatasetPreparationError(
            f"Reading COCO-Stuff-10k's .mat annotations needs scipy, which is not installed: {PREPARE_EXTRA_HINT} "
            "(or pip install scipy)."
        ) from error
    return scipy.io


def png_bytes(label: np.ndarray) -> bytes:
    """A uint8 label map as a single-channel (mode L) PNG."""
    buffer = io.BytesIO()
    PIL.Image.fromarray(label.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


class RowReader:
    """Reads pairs of one layout into rows `{image, annotation, <id columns>}`, checking each on the way.

    With `train_ids`, annotations are stored as the label set's train ids (255 = ignored) instead of the
    official raw values.
    """

    def __init__(self, files: SourceFiles, layout: DatasetLayout, train_ids: bool) -> None:
        self.files = files
        self.layout = layout
        self.lookup = layout.label_set.lut() if train_ids else None
        self.allowed = np.zeros(1 << 16, dtype=bool)
        self.allowed[sorted(layout.raw_values)] = True
        self._scipy_io = require_scipy() if layout.annotation_format == "mat" else None

    def read(self, pair: Pair) -> dict[str, Any]:
        """The row of `pair`; DatasetPreparationError naming the file when a check fails."""
        image_bytes = self.files.read(pair.image)
        width, height = self._image_size(pair.image, image_bytes)
        annotation_bytes = self.files.read(pair.annotation)
        label = self._label(pair.annotation, annotation_bytes)
        if label.shape != (height, width):
            raise DatasetPreparationError(
                f"{self.files.describe(pair.annotation)} is {label.shape[1]}x{label.shape[0]} but its image "
                f"{self.files.describe(pair.image)} is {width}x{height} (width x height); annotations must be "
                "pixel-aligned with their images. Re-download the archive if it came from the official release."
            )
        self._check_values(pair.annotation, label)
        if self.lookup is not None:
            annotation_bytes = png_bytes(self.lookup[label])
        elif self.layout.annotation_format != "png":
            annotation_bytes = png_bytes(label)
        stem = PurePosixPath(pair.annotation.name).stem
        row: dict[str, Any] = {
            "image": {"bytes": image_bytes, "path": PurePosixPath(pair.image.name).name},
            "annotation": {"bytes": annotation_bytes, "path": f"{stem}.png"},
        }
        row.update(zip(self.layout.id_columns, pair.ids))
        return row

    def _image_size(self, ref: FileRef, data: bytes) -> tuple[int, int]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
                with PIL.Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
                    if image.format == "PNG":
                        image.verify()
                    else:  # JPEG: a reduced-size decode (other formats ignore draft and decode fully)
                        image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                        image.load()
                    return width, height
        except Exception as error:  # PIL raises many types for a damaged file; all mean "unreadable"
            raise DatasetPreparationError(
                f"{self.files.describe(ref)} is not a readable image ({type(error).__name__}: {error}). Re-download "
                "the archive, or remove the file together with its annotation."
            ) from error

    def _label(self, ref: FileRef, data: bytes) -> np.ndarray:
        try:
            if self.layout.annotation_format == "mat":
                value = self._scipy_io.loadmat(io.BytesIO(data), variable_names=["S"]).get("S")
            else:
                value = PIL.Image.open(io.BytesIO(data))  # in memory: nothing to close
                value.load()
        except Exception as error:  # damaged PNG / MAT file: PIL and scipy raise many types
            raise DatasetPreparationError(
                f"{self.files.describe(ref)} is not a readable annotation ({type(error).__name__}: {error}). "
                "Re-download the archive, or remove the file together with its image."
            ) from error
        if value is None:
            raise DatasetPreparationError(f"{self.files.describe(ref)} has no label array 'S'.")
        try:
            return label_map_array(value, "it")
        except LabelMapError as error:
            raise DatasetPreparationError(f"{self.files.describe(ref)} is not a class-id map: {error}") from error

    def _check_values(self, ref: FileRef, label: np.ndarray) -> None:
        if label.min() >= 0 and label.max() < self.allowed.size:  # counting is much faster than sorting
            values = np.flatnonzero(np.bincount(label.ravel()))
        else:
            values = np.unique(label)
        bad = [int(value) for value in values if not (0 <= value < self.allowed.size and self.allowed[value])]
        if bad:
            raise DatasetPreparationError(
                f"{self.files.describe(ref)} holds values {bad[:10]} that {self.layout.name} does not define (its "
                f"annotations hold {_describe_values(self.layout.raw_values)}). Pass the official annotation files "
                f"({self.layout.annotation_hint('<name>')}), not colour or train-id renderings."
            )


def _describe_values(values: frozenset[int]) -> str:
    """`0..150` or `0..181, 255`: runs of consecutive values."""
    ordered, runs = sorted(values), []
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(f"{start}..{previous}" if previous > start else str(start))
        if value is not None:
            start = previous = value
    return ", ".join(runs)
