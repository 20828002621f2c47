"""Original tensors -> a `SegRetForSemanticSegmentation`: every tensor mapped or explicitly dropped.

Anything else, anything missing, a shape mismatch, or a stored decay buffer that disagrees with the
architecture raises :class:`CheckpointConversionError` naming the keys, before a model is returned. Which
stages use decomposed retention is not in the weights: it comes from the config.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch

from ..attention_segret import retention_decay
from ..configuration_segret import SegRetConfig
from ..modeling_segret import SegRetForSemanticSegmentation
from .checkpoint import MMSEG_FORMAT, RMT_IMAGENET_FORMAT, CheckpointConversionError, OriginalCheckpoint
from .keys import rename_backbone_key, rename_head_key

# Tensors of the originals that this package does not keep, and why. `Relpos.angle` holds rotary angles
# (SegRet applies no rotation); `Relpos.decay` is derived from the architecture, recomputed, and only
# checked against it (`_check_decay_buffers`).
_RELPOS_BUFFER = re.compile(r"^layers\.(\d+)\.Relpos\.(angle|decay)$")
_DROPPED_CLASSIFIER = re.compile(r"^(proj|norm|head)\.")  # RMT ImageNet classifier
_DROPPED_HEAD = re.compile(r"^decode_head\.conv_seg\.")  # mmseg BaseDecodeHead's unused classifier


def _check_decay_buffers(backbone: dict[str, torch.Tensor], config: SegRetConfig) -> list[str]:
    """Stored `Relpos.decay` buffers that the architecture would not produce (wrong heads/init values)."""
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


def _is_dropped(key: str, from_backbone: bool, checkpoint_format: str, num_stages: int) -> bool:
    """Whether an original key is on the drop list; decay/angle buffers only for stages the network has."""
    if not from_backbone:
        return bool(_DROPPED_HEAD.match(key))
    if match := _RELPOS_BUFFER.match(key):
        return int(match.group(1)) < num_stages
    return checkpoint_format == RMT_IMAGENET_FORMAT and bool(_DROPPED_CLASSIFIER.match(key))


def _map_tensors(
    checkpoint: OriginalCheckpoint, reference: dict[str, torch.Tensor], num_stages: int
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Converted tensors, dropped original keys and the list of problems (empty when the mapping is exact)."""
    converted: dict[str, torch.Tensor] = {}
    present: set[str] = set()  # reference keys the checkpoint provides, with the right shape or not
    dropped, unexpected, mismatched = [], [], []
    sources = [(k, v, True, "segret." + (rename_backbone_key(k) or "")) for k, v in checkpoint.backbone.items()]
    sources += [(k, v, False, rename_head_key(k) or "") for k, v in checkpoint.head.items()]
    for key, tensor, from_backbone, new_key in sources:
        if _is_dropped(key, from_backbone, checkpoint.format, num_stages):
            dropped.append(key)
            continue
        if new_key not in reference:
            unexpected.append(key)
            continue
        target = reference[new_key]
        original_shape = tuple(tensor.shape)
        if "layer_scale_" in new_key and tensor.ndim == 4:  # stored as (1, 1, 1, C)
            tensor = tensor.reshape(-1)
        if tuple(tensor.shape) != tuple(target.shape):
            mismatched.append(f"{key} {original_shape} -> {new_key} {tuple(target.shape)}")
            present.add(new_key)
            continue
        converted[new_key] = tensor.to(target.dtype).clone()
        present.add(new_key)
    wanted = [k for k in reference if checkpoint.format == MMSEG_FORMAT or k.startswith("segret.")]
    missing = [k for k in wanted if k not in present]
    problems = []
    if unexpected:
        problems.append(f"unexpected original tensors (neither mapped nor on the drop list): {_listing(unexpected)}")
    if missing:
        problems.append(f"tensors the architecture needs but the checkpoint lacks: {_listing(missing)}")
    if mismatched:
        problems.append(f"shape mismatches (original -> converted): {_listing(mismatched)}")
    return converted, dropped, problems


def _listing(items: list[str], limit: int = 25) -> str:
    """All items when few; otherwise the first `limit` and a count, so a wrong variant stays readable."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items) - limit} more, {len(items)} in all)"


def _conversion_error(problems: list[str]) -> CheckpointConversionError:
    return CheckpointConversionError(
        "The checkpoint does not match the requested architecture (check --variant/--architecture and "
        "--num_labels):\n- " + "\n- ".join(problems)
    )



@dataclass(frozen=True)
class Conversion:
    """A converted model and the original keys deliberately dropped (unused or derived tensors)."""

    model: SegRetForSemanticSegmentation
    dropped: list[str]


def convert(
    checkpoint: OriginalCheckpoint, config: SegRetConfig, attn_implementation: str = "sdpa"
) -> Conversion:
    """A `SegRetForSemanticSegmentation` of `config` (in eval mode) holding the checkpoint's weights; the decoder
    is freshly initialised for a backbone-only checkpoint. Every problem found is reported in one error."""
    config = copy.deepcopy(config)
    config._attn_implementation = attn_implementation
    model = SegRetForSemanticSegmentation(config)
    converted, dropped, problems = _map_tensors(checkpoint, model.state_dict(), len(config.depths))
    decay_problems = _check_decay_buffers(checkpoint.backbone, config)
    if decay_problems:
        problems.append(
            "stored decay buffers disagree with the architecture (wrong variant, heads or init values?): "
            + _listing(decay_problems)
        )
    if problems:
        raise _conversion_error(problems)
    model.load_state_dict(converted, strict=checkpoint.decoder_trained)
    return Conversion(model.eval(), dropped)
