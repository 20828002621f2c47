"""Run an exported SegRet with onnxruntime: images in, class maps out, no PyTorch model needed.

`segret_hf.onnx_export` writes `config.json` (the class names) and `preprocessor_config.json` (the image
processor) beside the `.onnx` file, so that folder is all a deployment needs: this module preprocesses with the
package's image processor, runs the graph and resizes the logits back to each image, exactly as
`pipeline("image-segmentation")` and `SegmentationInferencer` do with the PyTorch model.

onnxruntime is an optional dependency (`pip install "segret-hf[onnx]"`); it is imported when first needed.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from .configuration_segret import SegRetConfig
from .image_processing_segret import SegRetImageProcessor
from .inference import image_size

INPUT_NAME = "pixel_values"
OUTPUT_NAME = "logits"
MIN_SIDE_KEY = "segret.min_side"
MAX_SIDE_KEY = "segret.max_side"
"""Metadata keys of the exported graph: the range of image sides it was exported (and checked) for."""

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def import_onnxruntime() -> ModuleType:
    """The `onnxruntime` module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as error:
        raise ImportError(
            "onnxruntime is not installed; install the ONNX extra: pip install \"segret-hf[onnx]\"."
        ) from error


def inference_session(path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None) -> Any:
    """An `onnxruntime.InferenceSession` for `path`, on `providers` (default: every one available, best first).

    `threads` sets onnxruntime's intra-op threads (default: one per physical core).
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=list(providers or ort.get_available_providers()))


def find_onnx_file(path: str | Path) -> Path:
    """`path` itself if it is a file, else the single `.onnx` file in the folder `path`."""
    path = Path(path)
    if path.is_file():
        return path
    candidates = sorted(path.glob("*.onnx")) if path.is_dir() else []
    if len(candidates) != 1:
        found = "no .onnx file" if not candidates else f"{len(candidates)} .onnx files"
        raise FileNotFoundError(
            f"{str(path)!r} holds {found}; give the path of an exported model (scripts/export_onnx.py --output)."
        )
    return candidates[0]


class OnnxSegmenter:
    """An exported SegRet and its image processor: `predict(images)` gives one class-id map per image.

    The same interface as `segret_hf.inference.SegmentationInferencer` (`predict`, `id2label`), single-scale.
    """

    def __init__(self, session: Any, image_processor: SegRetImageProcessor, id2label: dict[int, str]) -> None:
        self.session = session
        self.image_processor = image_processor
        self.id2label = {int(index): name for index, name in id2label.items()}
        metadata = session.get_modelmeta().custom_metadata_map
        self.min_side = int(metadata.get(MIN_SIDE_KEY, 1))
        self.max_side = int(metadata[MAX_SIDE_KEY]) if MAX_SIDE_KEY in metadata else None
        self.input_dtype = _NUMPY_TYPES[session.get_inputs()[0].type]

    @classmethod
    def from_pretrained(
        cls, path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None
    ) -> OnnxSegmenter:
        """Load an export: its `.onnx` file, or the folder holding it with `config.json` and
        `preprocessor_config.json`."""
        onnx_file = find_onnx_file(path)
        folder = onnx_file.parent
        missing = [name for name in ("config.json", "preprocessor_config.json") if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{str(folder)!r} lacks {' and '.join(missing)} beside {onnx_file.name}; export again with "
                "scripts/export_onnx.py, which writes them."
            )
        image_processor = SegRetImageProcessor.from_pretrained(folder)
        id2label = SegRetConfig.from_pretrained(folder).id2label
        return cls(inference_session(onnx_file, threads, providers), image_processor, id2label)

    def logits(self, pixel_values: np.ndarray | torch.Tensor) -> np.ndarray:
        """Float32 logits `(batch, num_labels, H/4, W/4)` of preprocessed `(batch, 3, H, W)` pixel values."""
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = pixel_values.detach().cpu().numpy()
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"Expected pixel values of shape (batch, 3, height, width), got {pixel_values.shape}.")
        height, width = pixel_values.shape[2:]
        if min(height, width) < self.min_side:
            raise ValueError(
                f"This graph takes images of at least {self.min_side} pixels a side, got {height}x{width}: set the "
                "image processor's size so that inputs are at least that large."
            )
        if self.max_side is not None and max(height, width) > self.max_side:
            raise ValueError(
                f"This graph was exported for image sides up to {self.max_side} pixels, got {height}x{width}: set "
                "the image processor's size within that, or export again with a larger --max_side."
            )
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: pixel_values.astype(self.input_dtype, copy=False)})
        return logits.astype(np.float32, copy=False)

    def predict(self, images: Sequence[Any]) -> list[torch.Tensor]:
        """Class-id maps (int64, `(H, W)`) at each image's original size; images run one at a time."""
        maps = []
        for image in images:
            pixel_values = self.image_processor(images=image, return_tensors="np")["pixel_values"]
            height, width = image_size(image)
            logits = torch.from_numpy(self.logits(pixel_values))
            maps.extend(self.image_processor.post_process_semantic_segmentation(logits, [(height, width)]))
        return maps


__all__ = ["OnnxSegmenter", "find_onnx_file", "import_onnxruntime", "inference_session"]
