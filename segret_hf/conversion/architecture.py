"""The architecture a checkpoint is converted to: a released variant, or the original constructor's arguments.

The weights do not say which stages use decomposed retention (nor the decay settings), so a conversion is
always told the architecture: a variant name, or the arguments the original RMT / SegRet constructor was
called with (as in the fixtures' `*_architecture.json`).
"""

from __future__ import annotations

from typing import Any

from ..configuration_segret import SegRetConfig

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


def conversion_config(
    variant: str | None, architecture: dict[str, Any] | None, label_fields: dict[str, Any]
) -> SegRetConfig:
    """The config of exactly one of `variant` / `architecture`, with the classes' `label_fields`
    (`num_labels`, `id2label`, `label2id`)."""
    if (variant is None) == (architecture is None):
        raise ValueError("Pass exactly one of --variant and --architecture.")
    if variant is not None:
        return SegRetConfig.from_variant(variant, **label_fields)
    return config_from_architecture(architecture, **label_fields)
