"""Images of the training data path, from stored bytes straight to an RGB uint8 tensor.

`datasets` decodes an Image column to PIL (open, load, EXIF transpose, mode conversion), which is then copied
to a tensor. Training instead keeps the image column encoded and decodes the stored bytes with torchvision's
decoders (libjpeg-turbo, libpng, libwebp): the same pixels (EXIF orientation included; see the tests) in one
step, as a channels-last uint8 tensor: the `(H, W, 3)` array OpenCV's kernels take, without a copy.

Whatever torchvision cannot decode to 8 bits (other formats, 16-bit PNGs, values stored by path only) takes
the `datasets`/PIL path and the image processor's conversion, exactly as before.

torchvision 0.29 deprecates these decoders in favour of TorchCodec's (`torchcodec.decoders.decode_image`, the
same call), which would be a new dependency. Their DeprecationWarning is hidden by Python's default filters
outside `__main__`; the tests filter it (pyproject.toml).
"""

from __future__ import annotations

from typing import Any

import datasets
import torch
from torchvision.io import ImageReadMode, decode_image

from ..image_processing_segret import SegRetImageProcessor

Split = datasets.Dataset | datasets.IterableDataset


def keep_encoded(split: Split, column: str) -> Split:
    """`split` with `column` left as stored bytes when it is a plain `Image` column (no fixed mode).

    A column with a declared mode is left to `datasets`, which converts it (e.g. to greyscale) on decoding.
    """
    feature = (split.features or {}).get(column)
    if isinstance(feature, datasets.Image) and feature.decode and feature.mode is None:
        return split.cast_column(column, datasets.Image(decode=False))
    return split


def decode_rgb(value: Any, processor: SegRetImageProcessor) -> torch.Tensor:
    """A `(3, H, W)` RGB tensor from an image value: uint8, or float32 in [0, 255] for high-bit-depth images.

    `value` is what a row holds: encoded (`{"bytes", "path"}`, see `keep_encoded`), or already decoded (PIL
    image, array). Alpha is dropped and greyscale repeated, as the image processor does.
    """
    if isinstance(value, dict):
        stored = value.get("bytes")
        if stored is not None:
            try:
                pixels = decode_image(
                    torch.frombuffer(bytearray(stored), dtype=torch.uint8),
                    mode=ImageReadMode.RGB,
                    apply_exif_orientation=True,
                )
            except RuntimeError:  # a format torchvision does not read: PIL below
                pixels = None
            if pixels is not None and pixels.dtype == torch.uint8:
                return pixels
        value = datasets.Image().decode_example(value)
    return processor.process_image(value, do_convert_rgb=True)
