"""The models under test: SegRet variants under each attention implementation, and SegFormer baselines.

A `ModelSpec` is plain data (family, name, config keyword arguments, implementation, compiled) so that it can
be sent as JSON to the fresh subprocess that measures memory and rebuilt there identically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedConfig, SegformerConfig, SegformerForSemanticSegmentation

from segret_hf import SegRetConfig, SegRetForSemanticSegmentation
from segret_hf.configuration_segret import SEGRET_VARIANTS

NUM_LABELS = 150  # ADE20K, the setting of the papers' numbers.

# transformers' SegFormer sizes as published (mit-b1/b2/b5 with their ADE20K decoders).
_SEGFORMER_SHARED: dict[str, Any] = {
    "hidden_sizes": [64, 128, 320, 512],
    "num_attention_heads": [1, 2, 5, 8],
    "sr_ratios": [8, 4, 2, 1],
}
SEGFORMER_BASELINES: dict[str, dict[str, Any]] = {
    "b1": {**_SEGFORMER_SHARED, "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b2": {**_SEGFORMER_SHARED, "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
    "b5": {**_SEGFORMER_SHARED, "depths": [3, 6, 40, 3], "decoder_hidden_size": 768},
}
# SegFormer runs on its fused SDPA path, like SegRet's default, so the comparison is kernel for kernel.
SEGFORMER_IMPLEMENTATION = "sdpa"


@dataclass
class ModelSpec:
    """One model configuration under test; `label` is its name in every table."""

    family: str  # "segret" or "segformer"
    name: str  # SegRet variant or SegFormer size
    config_kwargs: dict[str, Any] = field(repr=False)
    implementation: str = "sdpa"
    compiled: bool = False
    channels_last: bool = False  # convolution weights (and so their outputs) in NHWC memory format

    @property
    def label(self) -> str:
        suffix = ("+channels_last" if self.channels_last else "") + ("+compile" if self.compiled else "")
        if self.family == "segformer":
            return f"segformer-{self.name}{suffix}"
        return f"segret-{self.name}/{self.implementation}{suffix}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**data)


def segret_spec(variant: str, implementation: str, compiled: bool = False, channels_last: bool = False) -> ModelSpec:
    """A released SegRet size with 150 labels."""
    kwargs = {**SEGRET_VARIANTS[variant], "num_labels": NUM_LABELS}
    return ModelSpec("segret", variant, kwargs, implementation, compiled, channels_last)


def segformer_spec(name: str) -> ModelSpec:
    """A SegFormer baseline with 150 labels (random weights: speed does not depend on them)."""
    kwargs = {**SEGFORMER_BASELINES[name], "num_labels": NUM_LABELS}
    return ModelSpec("segformer", name, kwargs, SEGFORMER_IMPLEMENTATION)


def build_config(spec: ModelSpec) -> PreTrainedConfig:
    config_class = SegRetConfig if spec.family == "segret" else SegformerConfig
    return config_class(**spec.config_kwargs, attn_implementation=spec.implementation)


def build_model(spec: ModelSpec, device: torch.device, dtype: torch.dtype, train: bool = False) -> nn.Module:
    """Random-weight model on `device` in `dtype`, in eval mode (or train mode), channels-last and compiled if the
    spec says so.

    The seed is fixed so that every process (main and memory probes) builds the same weights.
    """
    torch.manual_seed(0)
    model_class = SegRetForSemanticSegmentation if spec.family == "segret" else SegformerForSemanticSegmentation
    with device:  # initialised where it runs: large models build in a fraction of the time on a GPU
        model = model_class(build_config(spec))
    model = model.to(dtype=dtype)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train(train)
    return torch.compile(model) if spec.compiled else model


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
