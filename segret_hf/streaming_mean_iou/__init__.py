"""SegRet's mIoU as an `evaluate` module: `evaluate.load(segret_hf.streaming_mean_iou.PATH)`.

The module lives in `streaming_mean_iou.py` next to this file, where `evaluate.load` looks for it given the
folder; it needs no Hub access.
"""

from pathlib import Path

PATH = str(Path(__file__).resolve().parent)
"""Folder to give `evaluate.load`."""

__all__ = ["PATH"]
