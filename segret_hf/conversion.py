"""Conversion of original SegRet (mmsegmentation) and RMT (ImageNet) checkpoints to this package's format.

Every original tensor is either renamed onto a parameter/buffer of `SegRetForSemanticSegmentation` or on
an explicit drop list; anything else, anything missing, a shape mismatch, or a stored decay buffer that
disagrees with the architecture raises `CheckpointConversionError` naming the keys, before anything is
written. Which stages use decomposed retention is not in the weights: it comes from the variant or the
architecture JSON.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi

from .attention_segret import retention_decay
from .checkpoint_files import REFETCH, check_torch_file, read_json_file
from .configuration_segret import SEGRET_VARIANTS, SegRetConfig
from .data.label_maps import parse_id2label_spec
from .data.label_sets import LABEL_SETS
from .data.presets import get_preset
from .image_processing_segret import SegRetImageProcessor
from .inference import parse_hw, size_divisor_override
from .model_card import SourceCheckpoint, render_model_card
from .modeling_segret import SegRetForSemanticSegmentation
from .output_folders import check_output_dir, staged_output_dir

logger = logging.getLogger(__name__)

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

# Tensors of the originals that this package does not keep, and why. `Relpos.angle` holds rotary angles
# (SegRet applies no rotation); `Relpos.decay` is derived from the architecture, recomputed, and only
# checked against it (`_check_decay_buffers`).
_RELPOS_BUFFER = re.compile(r"^layers\.(\d+)\.Relpos\.(angle|decay)$")
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
    class_names: list[str] | None = None


def load_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Load a SegRet mmsegmentation or RMT ImageNet checkpoint (`weights_only=True`) and detect which it is.

    An empty, truncated or damaged file, or one that is not a PyTorch file, is reported as such (naming it)
    before `torch.load` would fail with an internal message.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    check_torch_file(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointConversionError(
            f"{path} holds objects other than tensors and plain containers, which are not loaded for safety "
            f"(torch.load(weights_only=True)): {error}"
        ) from None
    except (RuntimeError, EOFError, IndexError, KeyError) as error:  # the file's structure is damaged
        raise CheckpointConversionError(f"{path} cannot be read as a PyTorch checkpoint ({error}). {REFETCH}") from None
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
    """Config of a released size; the conversion-side twin of `config_from_architecture`."""
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
    sources = [(k, v, True, "segret." + (_rename_backbone_key(k) or "")) for k, v in checkpoint.backbone.items()]
    sources += [(k, v, False, _rename_head_key(k) or "") for k, v in checkpoint.head.items()]
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


def _build_model(
    checkpoint: OriginalCheckpoint, config: SegRetConfig, attn_implementation: str
) -> tuple[SegRetForSemanticSegmentation, list[str]]:
    """The converted model and the dropped original keys; every problem found is reported in one error."""
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
    model.load_state_dict(converted, strict=checkpoint.format == MMSEG_FORMAT)
    return model.eval(), dropped


def convert_checkpoint(
    checkpoint: OriginalCheckpoint, config: SegRetConfig, attn_implementation: str = "sdpa"
) -> SegRetForSemanticSegmentation:
    """Build a `SegRetForSemanticSegmentation` holding the checkpoint's weights (decoder fresh for RMT)."""
    return _build_model(checkpoint, config, attn_implementation)[0]


# ------------------------------------------------------------------------------------------------------
# Labels: from the weights, the checkpoint's metadata, the architecture JSON or the command line
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpec:
    """The classes a converted model predicts, and the dataset they belong to when that is known."""

    num_labels: int
    id2label: dict[int, str] | None = None
    dataset: str | None = None


def dataset_of_class_names(class_names: list[str]) -> str | None:
    """The built-in label set whose classes (in order) are `class_names`, ignoring surrounding spaces."""
    names = [name.strip() for name in class_names]
    for label_set in LABEL_SETS.values():
        if [name.strip() for name in label_set.class_names] == names:
            return label_set.name
    return None


def resolve_labels(
    checkpoint: OriginalCheckpoint,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    id2label_dataset: str | None = None,
    architecture_num_classes: int | None = None,
) -> LabelSpec:
    """Decide the class count and names, refusing any two sources that disagree.

    An mmseg checkpoint's classifier fixes the count; every other source (`--num_labels`, `--id2label`, the
    architecture's `num_classes`, the checkpoint's `meta["CLASSES"]`) must agree with it. An explicit
    `--id2label` names the classes in preference to `meta["CLASSES"]`. A backbone-only checkpoint has no
    classifier, so the count must come from the command line or the architecture; there the architecture's
    `num_classes` is only the original constructor's default (the classes it was built for), so an explicit
    `--num_labels` / `--id2label` replaces it, with a note in the log.
    """
    sources: list[tuple[str, int]] = []
    classifier = checkpoint.head.get("decode_head.linear_pred.weight")
    if classifier is not None:
        sources.append(("the checkpoint's classifier (decode_head.linear_pred.weight)", classifier.shape[0]))
    if num_labels is not None:
        sources.append(("--num_labels", num_labels))
    if id2label is not None:
        sources.append(("--id2label", len(id2label)))
    explicit = num_labels is not None or id2label is not None
    if architecture_num_classes is not None and classifier is None and explicit:
        logger.warning(
            "The architecture's num_classes (%d) is not used: this backbone-only checkpoint has no classifier, "
            "and the classes given on the command line decide the new head.",
            architecture_num_classes,
        )
    elif architecture_num_classes is not None:
        sources.append(("the architecture's num_classes", architecture_num_classes))
    if id2label is None and checkpoint.class_names:
        sources.append(('the checkpoint\'s meta["CLASSES"]', len(checkpoint.class_names)))
        id2label = dict(enumerate(checkpoint.class_names))
    if not sources:
        raise CheckpointConversionError(
            "This backbone-only (RMT ImageNet) checkpoint does not say how many classes the segmentation model "
            "should predict: pass --num_labels or --id2label."
        )
    counts = {count for _, count in sources}
    if len(counts) > 1:
        raise CheckpointConversionError(
            "Conflicting numbers of classes: " + ", ".join(f"{name} gives {count}" for name, count in sources) + "."
        )
    count = counts.pop()
    if count < 1:
        raise CheckpointConversionError(f"The number of classes must be positive, got {count}.")
    dataset = id2label_dataset
    if dataset is None and id2label is not None:
        dataset = dataset_of_class_names(list(id2label.values()))
    return LabelSpec(count, id2label, dataset)


# ------------------------------------------------------------------------------------------------------
# The whole conversion: checkpoint file -> save_pretrained folder (+ processor, model card, Hub upload)
# ------------------------------------------------------------------------------------------------------


@dataclass
class ConversionResult:
    """What `convert_original_checkpoint` wrote, for the command line summary and for callers."""

    output_dir: Path
    checkpoint_format: str
    variant: str | None
    dataset: str | None
    num_parameters: int
    num_labels: int
    dropped: list[str]
    sha256: str
    hub_url: str | None = None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_image_size(value: str | int | None) -> dict[str, int] | None:
    """`"512"` or `512` -> 512x512; `"512x1024"` -> height 512, width 1024; None keeps the processor default."""
    if value is None:
        return None
    try:
        height, width = parse_hw(str(value))
    except ValueError as error:
        raise ValueError(f"Image size: {error}") from None
    return {"height": height, "width": width}


def push_folder_to_hub(folder: str | Path, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
    """Create (if needed) the Hub model repo and upload `folder` to it; returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message="Upload SegRet converted from the original checkpoint",
    )
    return commit.commit_url


def convert_original_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path,
    *,
    variant: str | None = None,
    architecture: str | Path | dict[str, Any] | None = None,
    num_labels: int | None = None,
    id2label: str | Path | None = None,
    image_size: str | int | None = None,
    size_divisor: int | None = None,
    overwrite: bool = False,
    push_to_hub: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    license: str = "apache-2.0",
) -> ConversionResult:
    """Convert an original SegRet (mmseg) or RMT (ImageNet) checkpoint into a transformers folder.

    The folder holds `model.safetensors` + `config.json` (with the modelling code, for `trust_remote_code`),
    `preprocessor_config.json` and a model card `README.md`. Everything is checked before anything is written,
    and the folder is assembled next to `output_dir` and renamed into place at the end, so a failed
    conversion never leaves a partial or mixed folder behind.

    Args:
        checkpoint_path: the original `.pth`; its format is detected from its contents.
        output_dir: destination; must be absent or empty unless `overwrite`.
        variant: released size (`tiny`, `small`, `base`, `large`). Exactly one of `variant`/`architecture`.
        architecture: the original constructor's arguments, as a dict or a JSON file.
        num_labels: classes of the segmentation head (needed for backbone-only checkpoints).
        id2label: JSON file or built-in label set name (`ade20k`, `cityscapes`, `coco-stuff`, `coco-stuff-10k`).
        image_size: processor resize target (`N` or `HxW`); by default the released config's keep-ratio test
            scale for the dataset and variant (e.g. short side 512, long side 2048 on ADE20K), else the
            processor's 512x512.
        size_divisor: the processor's test-time alignment (mmseg `AlignedResize`), 0 for none; by default the
            dataset's paper protocol (32 for ADE20K and COCO-Stuff, none for Cityscapes or unknown classes).
        overwrite: replace a non-empty `output_dir`.
        push_to_hub: Hub repo id to upload the folder to after writing it.
        private: visibility of a repo that `push_to_hub` creates.
        token: Hub token (defaults to the logged-in one).
        license: Hub license id for the model card.
    """
    if (variant is None) == (architecture is None):
        raise ValueError("Pass exactly one of --variant and --architecture.")
    if variant is not None and variant not in SEGRET_VARIANTS:
        raise ValueError(f"Unknown SegRet variant {variant!r}; choose one of {sorted(SEGRET_VARIANTS)}.")
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite, "--overwrite")
    size = parse_image_size(image_size)
    if isinstance(architecture, (str, Path)):
        architecture = read_json_file(architecture, "--architecture")

    checkpoint_path = Path(checkpoint_path)
    checkpoint = load_original_checkpoint(checkpoint_path)
    explicit_id2label, id2label_dataset = parse_id2label_spec(id2label) if id2label is not None else (None, None)
    labels = resolve_labels(
        checkpoint,
        num_labels=num_labels,
        id2label=explicit_id2label,
        id2label_dataset=id2label_dataset,
        architecture_num_classes=(architecture or {}).get("num_classes"),
    )
    label_fields: dict[str, Any] = {"num_labels": labels.num_labels}
    if labels.id2label is not None:
        label_fields["id2label"] = labels.id2label
        label_fields["label2id"] = {name: index for index, name in labels.id2label.items()}
    if variant is not None:
        config = config_from_variant(variant, **label_fields)
    else:
        config = config_from_architecture(architecture, **label_fields)
        variant = config.matching_variant()
    model, dropped = _build_model(checkpoint, config, attn_implementation="sdpa")

    preset = get_preset(labels.dataset) if labels.dataset is not None else None
    processor_kwargs: dict[str, Any] = size_divisor_override(size_divisor, preset)
    if size is None and preset is not None:  # the released config's keep-ratio test resize
        long_side, short_side = preset.recipe(variant).test_scale
        size = {"shortest_edge": short_side, "longest_edge": long_side}
    if size is not None:
        processor_kwargs["size"] = size
    if preset is not None:
        processor_kwargs["do_reduce_labels"] = preset.do_reduce_labels
    processor = SegRetImageProcessor(**processor_kwargs)

    sha256 = file_sha256(checkpoint_path)
    decoder_trained = checkpoint.format == MMSEG_FORMAT
    description = (
        "SegRet mmsegmentation checkpoint" if decoder_trained else "RMT ImageNet-1k classification checkpoint"
    )
    card = render_model_card(
        num_parameters=model.num_parameters(),
        num_labels=labels.num_labels,
        model_id=push_to_hub or str(output_dir),
        variant=variant,
        dataset=labels.dataset,
        source=SourceCheckpoint(checkpoint_path.name, sha256, description),
        decoder_trained=decoder_trained,
        architecture=None if variant else architecture,
        license=license,
    )

    with staged_output_dir(output_dir) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / "README.md").write_text(card)

    hub_url = push_folder_to_hub(output_dir, push_to_hub, private=private, token=token) if push_to_hub else None
    return ConversionResult(
        output_dir=output_dir,
        checkpoint_format=checkpoint.format,
        variant=variant,
        dataset=labels.dataset,
        num_parameters=model.num_parameters(),
        num_labels=labels.num_labels,
        dropped=dropped,
        sha256=sha256,
        hub_url=hub_url,
    )


__all__ = [
    "CheckpointConversionError",
    "ConversionResult",
    "LabelSpec",
    "MMSEG_FORMAT",
    "OriginalCheckpoint",
    "RMT_IMAGENET_FORMAT",
    "config_from_architecture",
    "config_from_variant",
    "convert_checkpoint",
    "convert_original_checkpoint",
    "dataset_of_class_names",
    "file_sha256",
    "load_original_checkpoint",
    "parse_image_size",
    "push_folder_to_hub",
    "resolve_labels",
]
