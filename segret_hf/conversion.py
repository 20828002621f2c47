"""Conversion of original SegRet (mmsegmentation) and RMT (ImageNet) checkpoints to this package's format.

Every original tensor is either renamed onto a parameter/buffer of `SegRetForSemanticSegmentation` or on
an explicit drop list; anything else, anything missing, a shape mismatch, or a stored decay buffer that
disagrees with the architecture raises `CheckpointConversionError` naming the keys, before anything is
written. Which stages use decomposed retention is not in the weights: it comes from the variant or the
architecture JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .attention_segret import retention_decay
from .configuration_segret import SEGRET_VARIANTS, SegRetConfig

MMSEG_FORMAT = "mmseg"
RMT_IMAGENET_FORMAT = "rmt_imagenet"

# Original RMT / SegRet constructor argument names -> SegRetConfig fields.
_ARCHITECTURE_FIELDS = {
    "embed_dims": "hidden_sizes",
    "depths": "depths",
    "num_heads": "num_attention_heads",
    "init_values": "decay_init_values",
    "heads_ranges": "decay_heads_ranges",
    "mlp_ratios": "mlp_ratios",
    "chunkwise_recurrents": "decomposed_retention",
    "layerscales": "layer_scale",
    "layer_init_values": "layer_scale_init_value",
    "drop_path_rate": "drop_path_rate",
    "decoder_hidden_size": "decoder_hidden_size",
}

_STEM_INDICES = {"0": (0, "convolution"), "1": (0, "normalization"), "3": (1, "convolution"),
                 "4": (1, "normalization"), "6": (2, "convolution"), "7": (2, "normalization"),
                 "9": (3, "convolution"), "10": (3, "normalization")}  # fmt: skip

_BLOCK_PARTS = {
    "pos.conv": "position_encoding.convolution",
    "retention_layer_norm": "retention_layer_norm",
    "retention.q_proj": "retention.q_proj",
    "retention.k_proj": "retention.k_proj",
    "retention.v_proj": "retention.v_proj",
    "retention.out_proj": "retention.out_proj",
    "retention.lepe.conv": "retention.lepe.convolution",
    "final_layer_norm": "ffn_layer_norm",
    "ffn.fc1": "ffn.fc1",
    "ffn.fc2": "ffn.fc2",
}

_HEAD_PARTS = {
    "proj": "proj",
    "zeroLayer.conv": "zero_conv",
    "zeroLayer.bn": "zero_norm",
}

# Tensors of the originals that this package does not keep, and why.
_DROPPED_BACKBONE = re.compile(r"^layers\.\d+\.Relpos\.angle$")  # rotary angles; SegRet applies no rotation
_DROPPED_CLASSIFIER = re.compile(r"^(proj|norm|head)\.")  # RMT ImageNet classifier
_DROPPED_HEAD = re.compile(r"^decode_head\.conv_seg\.")  # mmseg BaseDecodeHead's unused classifier


class CheckpointConversionError(ValueError):
    """An original checkpoint does not match the architecture it is being converted to."""


@dataclass
class OriginalCheckpoint:
    """Tensors of an original checkpoint and what the file says about itself."""

    format: str
    backbone: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)
    class_names: list[str] | None = None


def load_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Load a SegRet mmsegmentation or RMT ImageNet checkpoint (`weights_only=True`) and detect which it is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        state = raw["state_dict"]
        unknown = sorted(k for k in state if not k.startswith(("backbone.", "decode_head.")))
        if unknown:
            raise CheckpointConversionError(
                f"{path} looks like an mmsegmentation checkpoint but has keys outside backbone./decode_head.: "
                f"{unknown[:10]}"
            )
        backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        head = {k: v for k, v in state.items() if k.startswith("decode_head.")}
        meta = raw.get("meta") or {}
        classes = meta.get("CLASSES") if isinstance(meta, dict) else None
        return OriginalCheckpoint(MMSEG_FORMAT, backbone, head, class_names=list(classes) if classes else None)
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        return OriginalCheckpoint(RMT_IMAGENET_FORMAT, dict(raw["model"]), {})
    keys = sorted(raw)[:10] if isinstance(raw, dict) else type(raw).__name__
    raise CheckpointConversionError(
        f"{path} is neither a SegRet mmsegmentation checkpoint (a dict with 'state_dict') nor an RMT ImageNet "
        f"checkpoint (a dict with 'model'); found {keys}."
    )


def config_from_architecture(architecture: dict[str, Any], **overrides: Any) -> SegRetConfig:
    """Build a config from the original constructor's arguments (as in the fixtures' `*_architecture.json`)."""
    unknown = sorted(set(architecture) - set(_ARCHITECTURE_FIELDS) - {"num_classes"})
    if unknown:
        raise ValueError(
            f"Unknown architecture arguments {unknown}; known: {sorted([*_ARCHITECTURE_FIELDS, 'num_classes'])}."
        )
    kwargs = {_ARCHITECTURE_FIELDS[k]: v for k, v in architecture.items() if k in _ARCHITECTURE_FIELDS}
    if "num_classes" in architecture:
        kwargs["num_labels"] = architecture["num_classes"]
    return SegRetConfig(**{**kwargs, **overrides})


def config_from_variant(variant: str, **overrides: Any) -> SegRetConfig:
    if variant not in SEGRET_VARIANTS:
        raise ValueError(f"Unknown SegRet variant {variant!r}; choose one of {sorted(SEGRET_VARIANTS)}.")
    return SegRetConfig.from_variant(variant, **overrides)


def _rename_backbone_key(key: str) -> str | None:
    """Original backbone key (no prefix) -> key under `segret.`; None when it is not a backbone weight."""
    if match := re.fullmatch(r"patch_embed\.proj\.(\d+)\.(\w+)", key):
        if match.group(1) in _STEM_INDICES:
            layer, part = _STEM_INDICES[match.group(1)]
            return f"stem.layers.{layer}.{part}.{match.group(2)}"
        return None
    if match := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)\.(\w+)", key):
        stage, block, part, leaf = match.groups()
        if part in _BLOCK_PARTS:
            return f"stages.{stage}.blocks.{block}.{_BLOCK_PARTS[part]}.{leaf}"
        return None
    if match := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.gamma_([12])", key):
        stage, block, index = match.groups()
        return f"stages.{stage}.blocks.{block}.layer_scale_{index}"
    if match := re.fullmatch(r"layers\.(\d+)\.downsample\.(reduction|norm)\.(\w+)", key):
        stage, part, leaf = match.groups()
        return f"stages.{stage}.downsample.{'convolution' if part == 'reduction' else 'normalization'}.{leaf}"
    return None


def _rename_head_key(key: str) -> str | None:
    if match := re.fullmatch(r"decode_head\.linear_c([1-4])\.(.+)\.(\w+)", key):
        stage, part, leaf = match.groups()
        if part in _HEAD_PARTS:
            return f"decode_head.linear_c.{int(stage) - 1}.{_HEAD_PARTS[part]}.{leaf}"
        return None
    if match := re.fullmatch(r"decode_head\.linear_fuse\.(conv|bn)\.(\w+)", key):
        part, leaf = match.groups()
        return f"decode_head.{'linear_fuse' if part == 'conv' else 'fuse_norm'}.{leaf}"
    if match := re.fullmatch(r"decode_head\.linear_pred\.(\w+)", key):
        return f"decode_head.classifier.{match.group(1)}"
    return None


def _check_decay_buffers(backbone: dict[str, torch.Tensor], config: SegRetConfig) -> list[str]:
    problems = []
    for stage in range(len(config.depths)):
        key = f"layers.{stage}.Relpos.decay"
        if key not in backbone:
            continue
        expected = retention_decay(
            config.num_attention_heads[stage], config.decay_init_values[stage], config.decay_heads_ranges[stage]
        )
        stored = backbone[key].float()
        if stored.shape != expected.shape or not torch.allclose(stored, expected, atol=1e-6, rtol=1e-5):
            problems.append(f"{key}: stored {stored.tolist()} but the architecture gives {expected.tolist()}")
    return problems


def convert_state_dict(
    checkpoint: OriginalCheckpoint, reference: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map original tensors onto `reference` (a `SegRetForSemanticSegmentation` state dict).

    Returns the converted tensors (a backbone-only checkpoint yields only `segret.*` keys) and the list of
    original keys deliberately dropped. Raises `CheckpointConversionError` on any unmapped, missing or
    mis-shaped tensor.
    """
    converted: dict[str, torch.Tensor] = {}
    dropped, unexpected, mismatched = [], [], []
    sources = [(k, v, "segret." + (_rename_backbone_key(k) or "")) for k, v in checkpoint.backbone.items()]
    sources += [(k, v, _rename_head_key(k) or "") for k, v in checkpoint.head.items()]
    for key, tensor, new_key in sources:
        is_backbone = key in checkpoint.backbone
        if (is_backbone and (_DROPPED_BACKBONE.match(key) or key.endswith("Relpos.decay"))) or (
            is_backbone and checkpoint.format == RMT_IMAGENET_FORMAT and _DROPPED_CLASSIFIER.match(key)
        ) or _DROPPED_HEAD.match(key):
            dropped.append(key)
            continue
        if new_key in ("", "segret.") or new_key not in reference:
            unexpected.append(key)
            continue
        target = reference[new_key]
        if "layer_scale_" in new_key:
            tensor = tensor.reshape(-1)
        if tuple(tensor.shape) != tuple(target.shape):
            mismatched.append(f"{key} {tuple(tensor.shape)} -> {new_key} {tuple(target.shape)}")
            continue
        converted[new_key] = tensor.to(target.dtype).clone()
    wanted = [k for k in reference if checkpoint.format == MMSEG_FORMAT or k.startswith("segret.")]
    missing = [k for k in wanted if k not in converted]
    problems = []
    if unexpected:
        problems.append(f"unexpected original tensors (neither mapped nor on the drop list): {unexpected}")
    if missing:
        problems.append(f"tensors the architecture needs but the checkpoint lacks: {missing}")
    if mismatched:
        problems.append(f"shape mismatches: {mismatched}")
    if problems:
        raise CheckpointConversionError(
            "The checkpoint does not match the requested architecture (check --variant/--architecture and "
            "--num_labels):\n- " + "\n- ".join(problems)
        )
    return converted, dropped


def convert_checkpoint(
    checkpoint: OriginalCheckpoint, config: SegRetConfig, attn_implementation: str = "sdpa"
) -> torch.nn.Module:
    """Build a `SegRetForSemanticSegmentation` holding the checkpoint's weights (decoder fresh for RMT)."""
    from .modeling_segret import SegRetForSemanticSegmentation

    decay_problems = _check_decay_buffers(checkpoint.backbone, config)
    if decay_problems:
        raise CheckpointConversionError(
            "Stored decay buffers disagree with the architecture (wrong variant or heads/init values?):\n- "
            + "\n- ".join(decay_problems)
        )
    config._attn_implementation = attn_implementation
    model = SegRetForSemanticSegmentation(config)
    converted, _ = convert_state_dict(checkpoint, model.state_dict())
    model.load_state_dict(converted, strict=checkpoint.format == MMSEG_FORMAT)
    return model.eval()


__all__ = [
    "CheckpointConversionError",
    "MMSEG_FORMAT",
    "OriginalCheckpoint",
    "RMT_IMAGENET_FORMAT",
    "config_from_architecture",
    "config_from_variant",
    "convert_checkpoint",
    "convert_state_dict",
    "load_original_checkpoint",
]
