"""Parameter names of the original SegRet / RMT code and of this package, in both directions.

The converter renames every original tensor onto `SegRetForSemanticSegmentation` with these tables, and the
optimiser applies the released configs' parameter-wise rules, which match substrings of the original names,
through the inverse (:func:`original_parameter_name`). One table serves both, so they cannot drift apart.
"""

from __future__ import annotations

import re

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


def rename_backbone_key(key: str) -> str | None:
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


def rename_head_key(key: str) -> str | None:
    """Original mmseg head key (with its `decode_head.` prefix) -> our key; None when it is not a head weight."""
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


def original_parameter_name(name: str) -> str:
    """Our parameter name (as in `SegRetForSemanticSegmentation.named_parameters()`) -> the name the same
    tensor has in an original mmseg SegRet model (`backbone.layers.0.blocks.1.final_layer_norm.weight`).

    The inverse of the converter's renaming, used to apply the released configs' parameter-wise optimiser
    rules, which match substrings of the original names.
    """
    stem = {value: key for key, value in _STEM_INDICES.items()}
    block = {value: key for key, value in _BLOCK_PARTS.items()}
    head = {value: key for key, value in _HEAD_PARTS.items()}
    if match := re.fullmatch(r"segret\.stem\.layers\.(\d+)\.(convolution|normalization)\.(\w+)", name):
        layer, part, leaf = match.groups()
        return f"backbone.patch_embed.proj.{stem[(int(layer), part)]}.{leaf}"
    if match := re.fullmatch(r"segret\.stages\.(\d+)\.blocks\.(\d+)\.layer_scale_([12])", name):
        return "backbone.layers.{}.blocks.{}.gamma_{}".format(*match.groups())
    if match := re.fullmatch(r"segret\.stages\.(\d+)\.blocks\.(\d+)\.(.+)\.(\w+)", name):
        stage, index, part, leaf = match.groups()
        if part in block:
            return f"backbone.layers.{stage}.blocks.{index}.{block[part]}.{leaf}"
    if match := re.fullmatch(r"segret\.stages\.(\d+)\.downsample\.(convolution|normalization)\.(\w+)", name):
        stage, part, leaf = match.groups()
        return f"backbone.layers.{stage}.downsample.{'reduction' if part == 'convolution' else 'norm'}.{leaf}"
    if match := re.fullmatch(r"decode_head\.linear_c\.(\d+)\.(\w+)\.(\w+)", name):
        stage, part, leaf = match.groups()
        if part in head:
            return f"decode_head.linear_c{int(stage) + 1}.{head[part]}.{leaf}"
    if match := re.fullmatch(r"decode_head\.(linear_fuse|fuse_norm|classifier)\.(\w+)", name):
        part, leaf = match.groups()
        original = {"linear_fuse": "linear_fuse.conv", "fuse_norm": "linear_fuse.bn", "classifier": "linear_pred"}
        return f"decode_head.{original[part]}.{leaf}"
    raise ValueError(f"{name!r} is not a SegRet parameter name; it has no counterpart in the original model.")
