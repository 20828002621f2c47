"""SegRet model configuration.

Every hyper-parameter of the released network (docs/architecture.md in the repository) lives here, so a
saved `config.json` alone rebuilds the exact model. Names follow transformers' SegFormer config where
an equivalent exists (`hidden_sizes`, `depths`, `num_attention_heads`, `decoder_hidden_size`); the
retention-specific ones say what they control (the original RMT argument name is given in brackets).
As for transformers' other backbones, `stage_names`, `out_features` and `out_indices` say which stage
features `SegRetBackbone` hands to a head such as UperNet or Mask2Former.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import PreTrainedConfig
from transformers.backbone_utils import BackboneConfigMixin

# The four released sizes. `decoder_hidden_size` is the paper's C; stochastic depth as trained.
SEGRET_VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_sizes": [64, 128, 256, 512],
        "depths": [2, 2, 8, 2],
        "num_attention_heads": [4, 4, 8, 16],
        "decay_heads_ranges": [4, 4, 6, 6],
        "mlp_ratios": [3, 3, 3, 3],
        "decomposed_retention": [True, True, False, False],
        "layer_scale": [False, False, False, False],
        "drop_path_rate": 0.1,
        "decoder_hidden_size": 256,
    },
    "small": {
        "hidden_sizes": [64, 128, 256, 512],
        "depths": [3, 4, 18, 4],
        "num_attention_heads": [4, 4, 8, 16],
        "decay_heads_ranges": [4, 4, 6, 6],
        "mlp_ratios": [4, 4, 3, 3],
        "decomposed_retention": [True, True, True, False],
        "layer_scale": [False, False, False, False],
        "drop_path_rate": 0.15,
        "decoder_hidden_size": 256,
    },
    "base": {
        "hidden_sizes": [80, 160, 320, 512],
        "depths": [4, 8, 25, 8],
        "num_attention_heads": [5, 5, 10, 16],
        "decay_heads_ranges": [5, 5, 6, 6],
        "mlp_ratios": [4, 4, 3, 3],
        "decomposed_retention": [True, True, True, False],
        "layer_scale": [False, False, True, True],
        "drop_path_rate": 0.4,
        "decoder_hidden_size": 256,
    },
    "large": {
        "hidden_sizes": [112, 224, 448, 640],
        "depths": [4, 8, 25, 8],
        "num_attention_heads": [7, 7, 14, 20],
        "decay_heads_ranges": [6, 6, 6, 6],
        "mlp_ratios": [4, 4, 3, 3],
        "decomposed_retention": [True, True, True, False],
        "layer_scale": [False, False, True, True],
        "drop_path_rate": 0.5,
        "decoder_hidden_size": 512,
    },
}

PER_STAGE_FIELDS = (
    "hidden_sizes",
    "depths",
    "num_attention_heads",
    "decay_init_values",
    "decay_heads_ranges",
    "mlp_ratios",
    "decomposed_retention",
    "layer_scale",
)
"""Fields with one entry per stage. Together they define the backbone's architecture."""

ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa", "flex_attention")


class SegRetConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""
    Configuration of a SegRet model: an RMT (Vision RetNet) backbone with Manhattan-decay retention and
    SegRet's lightweight decoder with zero-initialised residual (ZIR) layers.

    Args:
        num_channels (`int`, defaults to 3): input image channels.
        hidden_sizes (`list[int]`): width of each of the 4 stages [`embed_dims`].
        depths (`list[int]`): number of retention blocks per stage.
        num_attention_heads (`list[int]`): retention heads per stage; must divide the stage width.
        decay_init_values (`list[float]`): per-stage `init_value` of the spatial decay [`init_values`].
        decay_heads_ranges (`list[float]`): per-stage spread of the decay over heads [`heads_ranges`].
            Head h of n gets `log(1 - 2 ** (-init_value - heads_range * h / n))`.
        mlp_ratios (`list[float]`): FFN expansion per stage.
        decomposed_retention (`list[bool]`): stage uses the axis-decomposed retention (rows, then columns)
            instead of whole-image attention [`chunkwise_recurrents`].
        layer_scale (`list[bool]`): stage multiplies both residual branches by learned per-channel
            scales [`layerscales`].
        layer_scale_init_value (`float`, defaults to 1e-6): initial value of those scales [`layer_init_values`].
        drop_path_rate (`float`): stochastic depth rate reached by the last block (linear from 0).
        hidden_act (`str`, defaults to `"gelu"`): FFN activation (exact GELU).
        layer_norm_eps (`float`, defaults to 1e-6): LayerNorm epsilon inside blocks.
        batch_norm_eps (`float`, defaults to 1e-5): BatchNorm epsilon in stem, downsamplers and decoder.
        decoder_hidden_size (`int`): decoder width C.
        use_zero_init_residual (`bool`, defaults to `True`): keep the decoder's zero-initialised 1x1 conv + BN
            branch; `False` is the paper's "without ZIR" ablation.
        classifier_dropout_prob (`float`, defaults to 0.1): Dropout2d before the classifier.
        initializer_range (`float`, defaults to 0.02): std of the truncated normal used for linear layers.
        semantic_loss_ignore_index (`int`, defaults to 255): label value ignored by the loss.
        out_features (`list[str]`, *optional*): stages `SegRetBackbone` returns, among `stage_names`
            (`stage1`..`stage4`, strides 4, 8, 16, 32); defaults to the last stage, as in transformers' backbones.
        out_indices (`list[int]`, *optional*): the same selection by index into `stage_names`.

    Example:

    ```python
    >>> from segret_hf import SegRetConfig, SegRetForSemanticSegmentation
    >>> config = SegRetConfig.from_variant("tiny", num_labels=150)
    >>> model = SegRetForSemanticSegmentation(config)
    ```
    """

    model_type = "segret"

    num_channels: int = 3
    hidden_sizes: list[int] | tuple[int, ...] = (64, 128, 256, 512)
    depths: list[int] | tuple[int, ...] = (2, 2, 8, 2)
    num_attention_heads: list[int] | tuple[int, ...] = (4, 4, 8, 16)
    decay_init_values: list[float] | tuple[float, ...] = (2.0, 2.0, 2.0, 2.0)
    decay_heads_ranges: list[float] | tuple[float, ...] = (4.0, 4.0, 6.0, 6.0)
    mlp_ratios: list[float] | tuple[float, ...] = (3.0, 3.0, 3.0, 3.0)
    decomposed_retention: list[bool] | tuple[bool, ...] = (True, True, False, False)
    layer_scale: list[bool] | tuple[bool, ...] = (False, False, False, False)
    layer_scale_init_value: float = 1e-6
    drop_path_rate: float = 0.1
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    batch_norm_eps: float = 1e-5
    decoder_hidden_size: int = 256
    use_zero_init_residual: bool = True
    classifier_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    semantic_loss_ignore_index: int = 255
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        for name in PER_STAGE_FIELDS:
            setattr(self, name, list(getattr(self, name)))
        self._check_values()
        self.stage_names = [f"stage{index}" for index in range(1, len(self.depths) + 1)]
        self.set_output_features_output_indices(
            out_features=kwargs.pop("out_features", None), out_indices=kwargs.pop("out_indices", None)
        )
        super().__post_init__(**kwargs)

    def _check_values(self) -> None:
        """Reject configurations that cannot build the network, naming the field and the fix."""
        for name in PER_STAGE_FIELDS:
            value = getattr(self, name)
            if len(value) != 4:
                raise ValueError(
                    f"SegRetConfig.{name} must have one entry per stage (4 entries), got {len(value)}: {value}."
                )
        for stage, (width, heads) in enumerate(zip(self.hidden_sizes, self.num_attention_heads)):
            if heads <= 0 or width % heads != 0:
                raise ValueError(
                    f"SegRetConfig: stage {stage} has hidden size {width}, which {heads} attention heads do not "
                    f"divide; choose num_attention_heads[{stage}] among the divisors of {width}."
                )
        for name in ("hidden_sizes", "depths"):
            if any(v <= 0 for v in getattr(self, name)):
                raise ValueError(f"SegRetConfig.{name} must be positive integers, got {getattr(self, name)}.")
        for name in ("decay_init_values", "decay_heads_ranges", "mlp_ratios"):
            if not all(math.isfinite(v) for v in getattr(self, name)):
                raise ValueError(f"SegRetConfig.{name} must be finite numbers, got {getattr(self, name)}.")
        if any(ratio <= 0 for ratio in self.mlp_ratios):
            raise ValueError(f"SegRetConfig.mlp_ratios must be positive, got {self.mlp_ratios}.")
        for stage, (start, spread, heads) in enumerate(
            zip(self.decay_init_values, self.decay_heads_ranges, self.num_attention_heads)
        ):
            # Head h decays by 1 - 2 ** -(start + spread * h / heads); a rate in (0, 1) needs a positive exponent.
            if min(start, start + spread * (heads - 1) / heads) <= 0:
                raise ValueError(
                    f"SegRetConfig: stage {stage} has decay_init_values {start} and decay_heads_ranges {spread}, "
                    "which give a head a decay rate outside (0, 1); use a positive decay_init_values (2 in every "
                    "released variant) and a decay_heads_ranges that keeps start + range * h / heads positive."
                )
        for name in ("layer_norm_eps", "batch_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SegRetConfig.{name} must be a positive finite number, got {value}.")
        if not math.isfinite(self.layer_scale_init_value):
            raise ValueError(f"SegRetConfig.layer_scale_init_value must be finite, got {self.layer_scale_init_value}.")
        if self.decoder_hidden_size <= 0:
            raise ValueError(f"SegRetConfig.decoder_hidden_size must be positive, got {self.decoder_hidden_size}.")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"SegRetConfig.drop_path_rate must be in [0, 1), got {self.drop_path_rate}.")
        if not 0.0 <= self.classifier_dropout_prob < 1.0:
            raise ValueError(
                f"SegRetConfig.classifier_dropout_prob must be in [0, 1), got {self.classifier_dropout_prob}."
            )

    @property
    def num_hidden_layers(self) -> int:
        """Number of stages, each giving one hidden state. transformers resolves negative `output_hidden_states`
        indices with it, as SegFormer's and ConvNext's configs map it to their stage counts."""
        return len(self.depths)

    @classmethod
    def from_variant(cls, name: str, **overrides: Any) -> SegRetConfig:
        """Configuration of a released size (`tiny`, `small`, `base`, `large`), with optional field overrides."""
        if name not in SEGRET_VARIANTS:
            raise ValueError(f"Unknown SegRet variant {name!r}; choose one of {sorted(SEGRET_VARIANTS)}.")
        return cls(**{**SEGRET_VARIANTS[name], **overrides})

    def matching_variant(self) -> str | None:
        """Name of the released size whose network this config describes (stochastic depth aside), if any."""
        for name, fields in SEGRET_VARIANTS.items():
            same = all(getattr(self, key) == value for key, value in fields.items() if key != "drop_path_rate")
            if same and all(value == 2 for value in self.decay_init_values):
                return name
        return None


__all__ = ["SegRetConfig", "SEGRET_VARIANTS", "ATTENTION_IMPLEMENTATIONS", "PER_STAGE_FIELDS"]
