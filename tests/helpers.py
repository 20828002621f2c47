"""Builders shared by the tests: tiny saved SegRets, Hub-layout parquet datasets, scripts loaded as modules.

Everything is built in temporary folders, offline, in well under a second, so the tests spend their time on
what they check. Test files import it as `from helpers import ...`: without a `tests/__init__.py`, pytest
puts this folder on `sys.path`.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import PIL.Image
import torch
from datasets import Dataset, Features, Image, Value

from segret_hf import SegRetConfig, SegRetForSemanticSegmentation, SegRetImageProcessor
from segret_hf.modeling_segret import SegRetZeroConv
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
"""~20k parameters: the network of the training runs."""

SMALL_ARCHITECTURE: dict[str, Any] = {
    "hidden_sizes": [16, 32, 48, 64],
    "depths": [1, 1, 2, 1],
    "num_attention_heads": [2, 2, 4, 4],
    "decoder_hidden_size": 32,
}
"""SegRet-Tiny's layout, narrower: two blocks in stage 3, decomposed and whole-image retention both used."""


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values in every tensor (BN statistics and ZIR convs included) so that every part shows in outputs;
    returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator) * 0.05
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            elif name.endswith(("norm.weight", "normalization.weight", "layer_norm.weight")):
                values = values + 1.0
            tensor.copy_(values)
    return model.eval()


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


def save_model_folder(folder: Path, id2label: dict[int, str]) -> str:
    """A random SMALL_ARCHITECTURE SegRet (seed 0) and a "short side to 32" processor, like a released folder.

    Trained-like weight scales (Kaiming normal, fan_out, on every convolution but the zero-initialised ones)
    and a scaled classifier give predictions with several classes, so comparisons are not trivial.
    """
    config = SegRetConfig(**SMALL_ARCHITECTURE, num_labels=len(id2label), id2label=id2label)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        model = SegRetForSemanticSegmentation(config).eval()
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and not isinstance(module, SegRetZeroConv):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        model.decode_head.classifier.weight.mul_(20)
    model.save_pretrained(folder)
    SegRetImageProcessor(size={"shortest_edge": 32}).save_pretrained(folder)
    return str(folder)


def png_bytes(array: np.ndarray) -> bytes:
    """`array` encoded as a PNG file."""
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet_dataset(
    folder: Path,
    labels: list[np.ndarray],
    images: list[np.ndarray | bytes] | None = None,
    *,
    splits: tuple[str, ...] = ("train", "validation"),
    id2label: dict[int, str] | None = None,
    label_feature: Any = None,
    image_column: str = "image",
    label_column: str = "annotation",
) -> Path:
    """A Hub-layout dataset: `data/<split>-00000-of-00001.parquet` per split (same rows), and `id2label.json`.

    Images default to random noise of each label's size; one given as bytes is stored as is (e.g. a corrupt
    file). Labels are stored as PNG class-id maps, or with `label_feature` as that feature holding each map's
    first value (a label column that is not images). `id2label.json` is written when `id2label` is given.
    """
    rng = np.random.default_rng(0)
    if images is None:
        images = [rng.integers(0, 255, (*label.shape[:2], 3), dtype=np.uint8) for label in labels]
    if label_feature is None:
        label_feature = Image()
        label_values: list[Any] = [{"bytes": png_bytes(label.astype(np.uint8)), "path": None} for label in labels]
    else:
        label_values = [int(label.flat[0]) for label in labels]
    encoded = [{"bytes": image if isinstance(image, bytes) else png_bytes(image), "path": None} for image in images]
    features = Features({image_column: Image(), label_column: label_feature})
    table = Dataset.from_dict({image_column: encoded, label_column: label_values}, features=features)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split in splits:
        table.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    if id2label is not None:
        (folder / "id2label.json").write_text(json.dumps({str(k): v for k, v in id2label.items()}))
    return folder


def write_scenes_dataset(folder: Path, num_train: int = 8, num_validation: int = 4) -> Path:
    """The sample dataset's scene generator, smaller: Hub layout plus id2label.json."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    make_split(num_train, 0, "train").to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    make_split(num_validation, 1, "validation").to_parquet(folder / "data" / "validation-00000-of-00001.parquet")
    (folder / "id2label.json").write_text(json.dumps({str(i): name for i, name in enumerate(CLASS_NAMES)}))
    return folder


def stripes(height: int = 24, width: int = 32, num_classes: int = 3) -> np.ndarray:
    """A label map of vertical stripes, one per class."""
    return np.repeat((np.arange(width) * num_classes // width)[None], height, axis=0).astype(np.uint8)


INT_FEATURE = Value("int64")


def load_script(path: Path) -> ModuleType:
    """A script or example file (not a package module) imported as a module, to call its `main`."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
