"""PyTorch SegRet: RMT (Vision RetNet) backbone and SegRet's zero-initialised residual decoder.

The network is exactly the one of the released checkpoints (docs/architecture.md in the repository).
Backbone blocks keep activations channels-last, `(B, H, W, C)`, as the original does; stage features are
handed out as `(B, C, H, W)` views of the same memory (channels_last strides), so no copies are made.

Outputs follow transformers' conventions: `output_hidden_states` (a flag, or the indices of the stages to
keep) and `output_attentions` are recorded by transformers' output-capturing hooks, as for SegFormer, and
`SegRetBackbone` serves other heads through `AutoBackbone`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.backbone_utils import BackboneMixin, filter_output_hidden_states
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BackboneOutput, BaseModelOutput, SemanticSegmenterOutput
from transformers.models.auto.modeling_auto import MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .attention_segret import RetentionBias, RetentionWeights, retention_attention, retention_decay
from .configuration_segret import SegRetConfig


def _nchw(x: torch.Tensor) -> torch.Tensor:
    """`(B, H, W, C)` -> `(B, C, H, W)` view (channels_last memory format)."""
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """`(B, C, H, W)` -> `(B, H, W, C)` view."""
    return x.permute(0, 2, 3, 1)


def _to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """`(B, C, H, W)` -> contiguous `(B, H, W, C)`.

    Used where a dense conv hands over to the blocks: convolutions may return NCHW memory, and a stage fed a
    permuted NCHW tensor would pay a hidden copy in every LayerNorm and Linear of every block.
    """
    return _nhwc(x.contiguous(memory_format=torch.channels_last))


def fold_batch_norm(
    weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of `norm(linear_map(x))` as one linear map, valid while `norm` uses running statistics.

    Inference folds every BatchNorm that follows a convolution or projection into it: the result equals the
    two-step computation up to float rounding, and one full pass over the activation is saved.
    """
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    folded_weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    folded_bias = shift if bias is None else bias * scale + shift
    return folded_weight, folded_bias


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop whole samples of a residual branch, rescaling the kept ones."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class SegRetDropPath(nn.Module):
    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class SegRetConvNorm(nn.Module):
    """Conv2d (with bias) followed by BatchNorm2d, the unit of the stem and the downsamplers."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, eps: float) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.normalization = nn.BatchNorm2d(out_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization.training:
            return self.normalization(self.convolution(x))
        weight, bias = fold_batch_norm(self.convolution.weight, self.convolution.bias, self.normalization)
        conv = self.convolution
        return F.conv2d(x, weight, bias, conv.stride, conv.padding)


class SegRetStem(nn.Module):
    """Four 3x3 convs (strides 2, 1, 2, 1) with BN, GELU between them: pixels -> stride-4 tokens."""

    def __init__(self, config: SegRetConfig) -> None:
        super().__init__()
        half, full = config.hidden_sizes[0] // 2, config.hidden_sizes[0]
        eps = config.batch_norm_eps
        self.layers = nn.ModuleList(
            [
                SegRetConvNorm(config.num_channels, half, 2, eps),
                SegRetConvNorm(half, half, 1, eps),
                SegRetConvNorm(half, full, 2, eps),
                SegRetConvNorm(full, full, 1, eps),
            ]
        )
        self.activation = nn.GELU()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = pixel_values
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = self.activation(x)
        return _to_channels_last(x)


class SegRetDepthwiseConv(nn.Module):
    """Depthwise conv on channels-last input: the conditional position encoding and the LePE.

    With `add_input=True` it computes `x + conv(x)` (the position encoding's residual) as a single conv whose
    kernel centre is raised by one: the same sum, without a separate pass over `x`.
    """

    def __init__(self, channels: int, kernel_size: int, add_input: bool = False) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.add_input = add_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.convolution
        weight = conv.weight
        if self.add_input:
            centre = conv.kernel_size[0] // 2
            identity = torch.zeros_like(weight)
            identity[:, :, centre, centre] = 1
            weight = weight + identity
        return _nhwc(F.conv2d(_nchw(x), weight, conv.bias, padding=conv.padding, groups=conv.groups))


class SegRetRetention(nn.Module):
    """Manhattan self-attention (MaSA) with a local-enhanced value (LePE) term, no rotary shift."""

    def __init__(self, config: SegRetConfig, hidden_size: int, num_heads: int, decomposed: bool) -> None:
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.decomposed = decomposed
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.lepe = SegRetDepthwiseConv(hidden_size, kernel_size=5)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, bias: RetentionBias) -> tuple[torch.Tensor, RetentionWeights]:
        """`(B, H, W, C)` -> `(B, H, W, C)` and the attention probabilities (`eager` only; see `RetentionWeights`)."""
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        out, weights = retention_attention(
            self.config._attn_implementation or "sdpa", q, k, v, bias, self.num_heads, self.decomposed, self
        )
        return self.out_proj(out + self.lepe(v)), weights


class SegRetFeedForward(nn.Module):
    def __init__(self, config: SegRetConfig, hidden_size: int, mlp_ratio: float) -> None:
        super().__init__()
        inner = int(hidden_size * mlp_ratio)
        self.fc1 = nn.Linear(hidden_size, inner)
        self.activation = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(inner, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class SegRetBlock(GradientCheckpointingLayer):
    """`x + DWConv(x)`, then pre-norm retention and FFN residual branches (optionally layer-scaled)."""

    def __init__(self, config: SegRetConfig, stage: int, drop_prob: float) -> None:
        super().__init__()
        width = config.hidden_sizes[stage]
        self.position_encoding = SegRetDepthwiseConv(width, kernel_size=3, add_input=True)
        self.retention_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.retention = SegRetRetention(
            config, width, config.num_attention_heads[stage], config.decomposed_retention[stage]
        )
        self.ffn_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.ffn = SegRetFeedForward(config, width, config.mlp_ratios[stage])
        self.drop_path = SegRetDropPath(drop_prob)
        if config.layer_scale[stage]:
            self.layer_scale_1 = nn.Parameter(torch.full((width,), config.layer_scale_init_value))
            self.layer_scale_2 = nn.Parameter(torch.full((width,), config.layer_scale_init_value))
        else:
            self.layer_scale_1 = self.layer_scale_2 = None

    def forward(self, x: torch.Tensor, bias: RetentionBias) -> torch.Tensor:
        x = self.position_encoding(x)  # x + DWConv(x)
        branch, _ = self.retention(self.retention_layer_norm(x), bias)
        if self.layer_scale_1 is not None:
            branch = self.layer_scale_1 * branch
        x = x + self.drop_path(branch)
        branch = self.ffn(self.ffn_layer_norm(x))
        if self.layer_scale_2 is not None:
            branch = self.layer_scale_2 * branch
        return x + self.drop_path(branch)


class SegRetStage(nn.Module):
    """Retention blocks of one width, sharing one decay bias, then (stages 0-2) a stride-2 downsample."""

    def __init__(self, config: SegRetConfig, stage: int, drop_probs: list[float]) -> None:
        super().__init__()
        self.config = config
        self.stage = stage
        self.blocks = nn.ModuleList([SegRetBlock(config, stage, p) for p in drop_probs])
        last = stage == len(config.depths) - 1
        self.downsample = (
            None
            if last
            else SegRetConvNorm(config.hidden_sizes[stage], config.hidden_sizes[stage + 1], 2, config.batch_norm_eps)
        )

    def decay_bias(self, x: torch.Tensor) -> RetentionBias:
        config, stage = self.config, self.stage
        decay = retention_decay(
            config.num_attention_heads[stage],
            config.decay_init_values[stage],
            config.decay_heads_ranges[stage],
            device=x.device,
        )
        return RetentionBias.build(
            decay,
            x.shape[1],
            x.shape[2],
            config.decomposed_retention[stage],
            config._attn_implementation or "sdpa",
            x.dtype,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Channels-last input -> the stage feature `(B, C, H, W)` and the next stage's input (None after the last).

        The downsampler reads the very tensor handed out, so a gradient reaching the next stage passes through
        it (`feature.retain_grad()` then sees it).
        """
        bias = self.decay_bias(x)
        for block in self.blocks:
            x = block(x, bias)
        feature = _nchw(x)
        next_input = None if self.downsample is None else _to_channels_last(self.downsample(feature))
        return feature, next_input


class SegRetPreTrainedModel(PreTrainedModel):
    config: SegRetConfig
    config_class = SegRetConfig
    base_model_prefix = "segret"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["SegRetStage"]
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {
        # Stage 0's input is the stem's output, not a stage feature: only the four stage features are recorded.
        "hidden_states": OutputRecorder(SegRetStage, index=0, capture_initial_hidden_state=False),
        "attentions": OutputRecorder(SegRetRetention, index=1),
    }
    # The loss is a mean over this batch's labelled pixels, not a sum to be divided by `num_items_in_batch`:
    # the Trainer must do the gradient-accumulation and multi-process scaling itself.
    accepts_loss_kwargs = False

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """`PreTrainedModel.save_pretrained`, listing every Auto class of the saved modelling code in `auto_map`.

        transformers records only the saved class's own Auto class (plus the config's), so a folder saved from
        `SegRetForSemanticSegmentation` would not load through `AutoModel` or `AutoBackbone` with
        `trust_remote_code=True`, although the copied file defines both.
        """
        module = type(self).__module__.rsplit(".", 1)[-1]
        registered = {
            cls._auto_class: f"{module}.{cls.__name__}"
            for cls in (SegRetModel, SegRetForSemanticSegmentation, SegRetBackbone)
            if cls._auto_class is not None
        }
        if self._auto_class is not None and registered:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **registered}
        super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise every module as the original code does (docs/architecture.md, "Initialisation").

        RMT gives every Linear of the backbone a truncated normal (std 0.02) and leaves its convolutions at
        PyTorch's default; mmseg's SegFormer-style head leaves its per-stage Linear and its classifier at
        PyTorch's default, mmcv's ConvModule gives the fuse conv Kaiming normal (fan_out, ReLU), and the ZIR
        convs start at exactly zero. The decoder's three special cases are their own module types.
        """
        if isinstance(module, SegRetZeroConv):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SegRetFuseConv):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, SegRetPixelLinear):
            _pytorch_default_init(module)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            _pytorch_default_init(module)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm2d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, SegRetBlock) and module.layer_scale_1 is not None:
            init.constant_(module.layer_scale_1, self.config.layer_scale_init_value)
            init.constant_(module.layer_scale_2, self.config.layer_scale_init_value)


def _pytorch_default_init(module: nn.Linear | nn.Conv2d) -> None:
    """What `reset_parameters` gives a Linear or Conv2d (Kaiming uniform, a=sqrt(5); bias within 1/sqrt(fan_in)),
    through transformers' guarded init functions so that loaded weights are never overwritten."""
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        bound = 1.0 / math.sqrt(module.weight[0].numel())
        init.uniform_(module.bias, -bound, bound)


_FORWARD_KWARGS = frozenset(TransformersKwargs.__annotations__)


def _check_forward_kwargs(model: SegRetPreTrainedModel, kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments that are not transformers' common ones, and attention maps SegRet cannot give.

    A misspelt option (`output_hidden_state=True`) would otherwise be ignored without a word.
    """
    unknown = sorted(set(kwargs) - _FORWARD_KWARGS)
    if unknown:
        raise TypeError(
            f"{type(model).__name__}.forward() got unexpected keyword argument(s) {unknown}; besides its named "
            f"arguments it accepts transformers' common keyword arguments {sorted(_FORWARD_KWARGS)}."
        )
    implementation = model.config._attn_implementation or "sdpa"
    if kwargs.get("output_attentions", model.config.output_attentions) and implementation != "eager":
        raise ValueError(
            f"output_attentions=True needs attn_implementation='eager' (this model uses {implementation!r}, which "
            "never forms the attention probabilities); call model.set_attn_implementation('eager') first."
        )


class SegRetModel(SegRetPreTrainedModel):
    """The RMT backbone: stem and four retention stages, returning features at strides 4, 8, 16, 32."""

    # Loaded from a SegRetForSemanticSegmentation checkpoint, the backbone leaves its decoder behind on purpose.
    _keys_to_ignore_on_load_unexpected = [r"^decode_head\."]

    def __init__(self, config: SegRetConfig) -> None:
        super().__init__(config)
        total = sum(config.depths)
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(config.depths[:i]) for i in range(len(config.depths))]
        self.stem = SegRetStem(config)
        self.stages = nn.ModuleList(
            [
                SegRetStage(config, i, rates[start : start + depth])
                for i, (start, depth) in enumerate(zip(starts, config.depths))
            ]
        )
        self.post_init()

    @capture_outputs
    def forward(self, pixel_values: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> BaseModelOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Normalised images (see `SegRetImageProcessor`); any height and width.
        output_hidden_states (`bool` or `list[int]`, *optional*):
            Also return the four stage features `(batch_size, C_i, H_i, W_i)` at strides 4, 8, 16, 32 as
            `hidden_states`; given stage indices, only those are kept and the others are None (as for SegFormer).
        output_attentions (`bool`, *optional*):
            Also return the attention probabilities of every retention layer, in block order, as `attentions`
            (shapes: `segret_hf.attention_segret.RetentionWeights`; decomposed layers give a (rows, columns)
            pair). Needs `attn_implementation="eager"`.

        Returns `BaseModelOutput` whose `last_hidden_state` is the stage-4 feature `(batch_size, C_4, H/32, W/32)`.
        """
        _check_forward_kwargs(self, kwargs)
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"SegRet expects pixel_values of shape (batch, {self.config.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}; run images through SegRetImageProcessor first."
            )
        x = self.stem(pixel_values)
        for stage in self.stages:
            feature, x = stage(x)
        return BaseModelOutput(last_hidden_state=feature)


class SegRetBackbone(BackboneMixin, SegRetModel):
    """The RMT backbone for other heads (UperNet, Mask2Former, ...), through `AutoBackbone`.

    `feature_maps` are the stage features named in `config.out_features` (`stage1`..`stage4`, strides 4 to 32,
    `(batch_size, C_i, H_i, W_i)`). The weights are `SegRetModel`'s, so it loads from any SegRet checkpoint.
    """

    def __init__(self, config: SegRetConfig) -> None:
        super().__init__(config)
        self.num_features = list(config.hidden_sizes)

    @can_return_tuple
    @filter_output_hidden_states
    def forward(self, pixel_values: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> BackboneOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Normalised images (see `SegRetImageProcessor`); any height and width.

        `output_hidden_states` and `output_attentions` behave as in `SegRetModel.forward`.
        """
        outputs = SegRetModel.forward(self, pixel_values, **kwargs)  # BackboneMixin.forward comes first in the MRO
        feature_maps = tuple(
            feature for name, feature in zip(self.stage_names, outputs.hidden_states) if name in self.out_features
        )
        return BackboneOutput(
            feature_maps=feature_maps, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class SegRetZeroConv(nn.Conv2d):
    """The 1x1 convolution of a ZIR branch. It starts at exactly zero (weight and bias), so the branch adds
    nothing until training moves it and the decoder starts as its plain Linear path."""


class SegRetPixelLinear(nn.Linear):
    """The decoder's per-pixel stage projection. It keeps PyTorch's default init, as mmseg's head does: only
    the backbone's Linears get RMT's truncated normal."""


class SegRetFuseConv(nn.Conv2d):
    """The decoder's 1x1 fuse convolution, an mmcv ConvModule in the original: Kaiming normal (fan_out, ReLU)."""


class SegRetStageProjection(nn.Module):
    """`ReLU(Linear(f) + BN(ZeroConv1x1(f)))`: one stage feature to the decoder width C.

    With `use_zero_init_residual=False` (the paper's "without ZIR" ablation) only the Linear remains.
    """

    def __init__(self, config: SegRetConfig, in_channels: int) -> None:
        super().__init__()
        out = config.decoder_hidden_size
        self.proj = SegRetPixelLinear(in_channels, out)
        if config.use_zero_init_residual:
            self.zero_conv = SegRetZeroConv(in_channels, out, kernel_size=1)
            self.zero_norm = nn.BatchNorm2d(out, eps=config.batch_norm_eps)
        else:
            self.zero_conv = self.zero_norm = None

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """`(B, H, W, C_i)` -> `(B, H, W, C)`."""
        if self.zero_conv is None:
            return F.relu(self.proj(feature))
        if self.zero_norm.training:
            return F.relu(self.proj(feature) + _nhwc(self.zero_norm(self.zero_conv(_nchw(feature)))))
        # Inference: Linear + BN(Conv1x1) is one linear map of the same input; apply it once.
        zero_weight, zero_bias = fold_batch_norm(self.zero_conv.weight.flatten(1), self.zero_conv.bias, self.zero_norm)
        return F.relu(F.linear(feature, self.proj.weight + zero_weight, self.proj.bias + zero_bias))


class SegRetDecodeHead(nn.Module):
    """SegRet's lightweight decoder.

    Reference maths: resize F_2..F_4 to F_1's size, concatenate `[F_4, F_3, F_2, F_1]`, 1x1 conv (4C -> C,
    no bias), BN, ReLU, Dropout2d, 1x1 classifier. The fuse conv and bilinear resizing are both linear, so
    the fuse is applied per stage at that stage's own resolution (one C x C slice of the fuse weight each)
    and the C-channel results are resized and summed. That equals the reference up to float rounding while
    never building the 4C-channel stride-4 tensor, and cuts the fuse cost of stages 2-4 by 4x-64x.
    """

    def __init__(self, config: SegRetConfig) -> None:
        super().__init__()
        hidden = config.decoder_hidden_size
        self.linear_c = nn.ModuleList([SegRetStageProjection(config, c) for c in config.hidden_sizes])
        self.linear_fuse = SegRetFuseConv(hidden * len(config.hidden_sizes), hidden, kernel_size=1, bias=False)
        self.fuse_norm = nn.BatchNorm2d(hidden, eps=config.batch_norm_eps)
        self.dropout = nn.Dropout2d(config.classifier_dropout_prob)
        self.classifier = nn.Conv2d(hidden, config.num_labels, kernel_size=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Channels-last stage features `(B, H_i, W_i, C_i)` -> logits `(B, num_labels, H_1, W_1)`."""
        stages = len(features)
        fuse_weight, fuse_bias = self.linear_fuse.weight.flatten(1), None
        if not self.fuse_norm.training:
            fuse_weight, fuse_bias = fold_batch_norm(fuse_weight, None, self.fuse_norm)
        fuse_slices = fuse_weight.chunk(stages, dim=1)  # slice j multiplies F_{stages - j}
        size = features[0].shape[1:3]
        fused = None
        # Coarsest stage first, so the stride-4 partial (which carries the folded BN shift) is added last.
        for index in reversed(range(stages)):
            bias = fuse_bias if index == 0 else None
            partial = _nchw(F.linear(self.linear_c[index](features[index]), fuse_slices[stages - 1 - index], bias))
            if index > 0:  # coarser stages (a same-size resize is exact, and keeps exported graphs size-free)
                partial = F.interpolate(partial, size=size, mode="bilinear", align_corners=False)
            fused = partial if fused is None else fused + partial
        if self.fuse_norm.training:
            fused = self.fuse_norm(fused)
        return self.classifier(self.dropout(F.relu(fused)))


class SegRetForSemanticSegmentation(SegRetPreTrainedModel):
    """SegRet: the RMT backbone with the zero-initialised residual decoder; logits at stride 4."""

    def __init__(self, config: SegRetConfig) -> None:
        super().__init__(config)
        self.segret = SegRetModel(config)
        self.decode_head = SegRetDecodeHead(config)
        self.post_init()

    @can_return_tuple
    @filter_output_hidden_states
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SemanticSegmenterOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            Ground-truth class ids; pixels equal to `config.semantic_loss_ignore_index` (255) are ignored.
            Logits are resized (bilinear) to the labels' size for a mean cross-entropy over labelled pixels.

        `output_hidden_states` and `output_attentions` behave as in `SegRetModel.forward`.

        Example:

        ```python
        >>> from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation
        >>> import segret_hf  # registers SegRet with the Auto classes
        >>> processor = AutoImageProcessor.from_pretrained("path/to/segret-tiny-ade-512-512")
        >>> model = AutoModelForSemanticSegmentation.from_pretrained("path/to/segret-tiny-ade-512-512")
        >>> outputs = model(**processor(images=image, return_tensors="pt"))
        >>> outputs.logits.shape  # (batch_size, num_labels, height / 4, width / 4)
        ```
        """
        if labels is not None and self.config.num_labels < 2:
            raise ValueError(
                f"SegRet's loss is a softmax cross-entropy and needs num_labels >= 2, got {self.config.num_labels}."
            )
        # The decoder needs every stage: `filter_output_hidden_states` asks for all of them and afterwards keeps
        # what the caller requested.
        outputs = self.segret(pixel_values, **kwargs)
        logits = self.decode_head([_nhwc(feature) for feature in outputs.hidden_states])

        loss = None
        if labels is not None:
            upsampled = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(upsampled, labels, ignore_index=self.config.semantic_loss_ignore_index)

        return SemanticSegmenterOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


def declare_for_segmentation_pipeline() -> None:
    """List SegRet in the table of semantic segmentation models that the image-segmentation pipeline checks.

    `ImageSegmentationPipeline` compares the model's class name with transformers' built-in model-type table
    (not with what `AutoModelForSemanticSegmentation.register` added) and logs an error for anything else.
    This adds the single entry for the model type "segret". The Auto mappings read that table only for model
    types of transformers' own configs, so no other model, pipeline or Auto class changes behaviour. It runs on
    import so that models loaded as remote code (without segret_hf) are covered too.
    """
    MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES.setdefault(
        SegRetConfig.model_type, SegRetForSemanticSegmentation.__name__
    )


declare_for_segmentation_pipeline()

__all__ = ["SegRetBackbone", "SegRetForSemanticSegmentation", "SegRetModel", "SegRetPreTrainedModel"]
