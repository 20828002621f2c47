"""Helpers for the training tests: tiny datasets on disk and a tiny saved SegRet.

Everything is built in temporary folders, offline, in well under a second, so the end-to-end tests spend
their time training rather than preparing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from datasets import Dataset, Features, Image, Value

from segret_hf import SegRetConfig, SegRetForSemanticSegmentation
from segret_hf.training.sample_data import CLASS_NAMES, make_split

TINY_ARCHITECTURE: dict[str, Any] = {
    "hidden_sizes": [8, 16, 24, 32],
    "depths": [1, 1, 1, 1],
    "num_attention_heads": [2, 2, 2, 4],
    "decay_heads_ranges": [4, 4, 6, 6],
    "mlp_ratios": [2, 2, 2, 2],
    "decomposed_retention": [True, True, False, False],
    "decoder_hidden_size": 16,
}


def save_tiny_model(folder: Path, id2label: dict[int, str], **overrides: Any) -> Path:
    """A SegRet of ~20k parameters with fixed random weights (seed 0), saved with `save_pretrained`."""
    config = SegRetConfig(
        **{**TINY_ARCHITECTURE, **overrides},
        num_labels=len(id2label),
        id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        SegRetForSemanticSegmentation(config).save_pretrained(folder)
    return folder


def write_scenes_dataset(folder: Path, num_train: int = 8, num_validation: int = 4) -> Path:
    """The sample dataset's scene generator, smaller: Hub layout plus id2label.json."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    make_split(num_train, 0, "train").to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    make_split(num_validation, 1, "validation").to_parquet(folder / "data" / "validation-00000-of-00001.parquet")
    (folder / "id2label.json").write_text(json.dumps({str(i): name for i, name in enumerate(CLASS_NAMES)}))
    return folder


def write_custom_dataset(
    folder: Path,
    labels: list[np.ndarray],
    images: list[np.ndarray] | None = None,
    label_feature: Any = None,
    num_classes: int = 3,
    image_column: str = "image",
    label_column: str = "annotation",
) -> Path:
    """A Hub-layout dataset whose train and validation splits hold the given label maps (images random)."""
    rng = np.random.default_rng(0)
    if images is None:
        images = [rng.integers(0, 255, (*label.shape[:2], 3), dtype=np.uint8) for label in labels]
    if label_feature is None:
        label_feature = Image()
        label_values: list[Any] = [PIL.Image.fromarray(label.astype(np.uint8)) for label in labels]
    else:
        label_values = [int(label.flat[0]) for label in labels]
    features = Features({image_column: Image(), label_column: label_feature})
    data = {image_column: [PIL.Image.fromarray(image) for image in images], label_column: label_values}
    split = Dataset.from_dict(data, features=features)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for name in ("train", "validation"):
        split.to_parquet(folder / "data" / f"{name}-00000-of-00001.parquet")
    (folder / "id2label.json").write_text(json.dumps({str(i): f"class_{i}" for i in range(num_classes)}))
    return folder


def stripes(height: int = 24, width: int = 32, num_classes: int = 3) -> np.ndarray:
    """A label map of vertical stripes, one per class."""
    return np.repeat((np.arange(width) * num_classes // width)[None], height, axis=0).astype(np.uint8)


INT_FEATURE = Value("int64")
