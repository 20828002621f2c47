"""PyTorch SegRet: RMT (Vision RetNet) backbone and SegRet's zero-initialised residual decoder.

The network is exactly the one of the released checkpoints (docs/architecture.md in the repository).
Backbone blocks keep activations channels-last, `(B, H, W, C)`, as the original does; stage features are
handed out as `(B, C, H, W)` views of the same memory (channels_last strides), so no copies are made.

Outputs follow transformers' conventions: `output_hidden_states` (a flag, or the indices of the stages to
keep) and `output_attentions` are recorded by transformers' output-capturing hooks, as for SegFormer, and
`SegRetBackbone` serves other heads through `AutoBackbone`.

Each `forward` is the network's maths as trained (convolution, BatchNorm, activation). For inference,
`SegRetPreTrainedModel.fuse` (run by `model.eval()`) puts fused modules in place of the units whose BatchNorm
can be folded into the linear map before it, and `unfuse` (run by `model.train()`) puts the originals back.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
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

    The result equals the two-step computation up to float rounding, and saves one full pass over the
    activation; the fused modules below are built on it.
    """
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    folded_weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    folded_bias = shift if bias is None else bias * scale + shift
    return folded_weight, folded_bias


def _fold_if_changed(module: SegRetFusedModule, args: tuple[Any, ...]) -> None:
    """Forward pre-hook of fused modules: fold again if a parameter or statistic they fold changed since."""
    if not torch.compiler.is_compiling() and module.source_versions() != module.folded_versions:
        module.fold()


class SegRetFusedModule(nn.Module, ABC):
    """Base of the modules that `SegRetPreTrainedModel.fuse` puts in place of another module for inference.

    A fused module computes what the module it replaces computes in eval mode, with each BatchNorm folded into
    the linear map before it (`fold_batch_norm`), so the activation is not read and written a second time. It
    shares the replaced module's children (the very same dict of submodules), so parameter names,
    `state_dict()`, `parameters()`, `.to()` and the optimiser see the same tensors whether the model is fused
    or not; `unfuse` puts `original` back.

    The folded tensors are non-persistent buffers computed outside autograd: they move with the model, never
    enter a state dict and never pass a gradient to the parameters. `fold` computes them on every `fuse()`,
    and again before a forward pass whenever a tensor they come from was replaced or changed in place since
    (`load_state_dict`, an EMA copy, an edit in eval mode), as the unfused module would see the change. Inside
    `torch.compile` and `torch.export` that check is skipped: fold first, with `eval()` or `fuse()`.
    """

    replaces: type[nn.Module]
    folded_from: tuple[str, ...]  # the children whose parameters and buffers the folded tensors come from

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self._modules = original._modules
        object.__setattr__(self, "original", original)  # not a submodule: its children are already ours
        self.folded_versions: list[tuple[int, int]] = []
        self.register_forward_pre_hook(_fold_if_changed)

    @classmethod
    def applies_to(cls, module: nn.Module) -> bool:
        """Whether `module` has a BatchNorm this class folds."""
        return isinstance(module, cls.replaces)

    @abstractmethod
    def folded(self) -> dict[str, torch.Tensor]:
        """The folded tensors, by buffer name, from the current parameters and running statistics."""

    def source_versions(self) -> list[tuple[int, int]]:
        """Identity and in-place version counter of every tensor the folded ones are computed from."""
        return [
            (id(tensor), tensor._version)
            for name in self.folded_from
            for tensor in (*self._modules[name].parameters(), *self._modules[name].buffers())
        ]

    def fold(self) -> None:
        """(Re)compute the folded tensors: plain tensors outside autograd, even under `torch.inference_mode`."""
        with torch.inference_mode(False), torch.no_grad():
            for name, tensor in self.folded().items():
                self.register_buffer(name, tensor, persistent=False)
        self.folded_versions = self.source_versions()

    def release(self) -> None:
        """Drop the folded tensors once `original` is back in the model (the next `fold` recomputes them)."""
        for name in self._buffers:
            self._buffers[name] = None


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
        return self.normalization(self.convolution(x))


class SegRetFusedConvNorm(SegRetFusedModule):
    """`SegRetConvNorm` at inference: one convolution whose weight and bias have the BatchNorm folded in."""

    replaces = SegRetConvNorm
    folded_from = ("convolution", "normalization")

    def folded(self) -> dict[str, torch.Tensor]:
        weight, bias = fold_batch_norm(self.convolution.weight, self.convolution.bias, self.normalization)
        return {"folded_weight": weight, "folded_bias": bias}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.convolution
        return F.conv2d(x, self.folded_weight, self.folded_bias, conv.stride, conv.padding)


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

    def train(self, mode: bool = True) -> SegRetPreTrainedModel:
        """`nn.Module.train`, which also unfuses the model for training and fuses it for inference.

        `train()` runs `unfuse()` first, so training always runs the original modules and their BatchNorms;
        `train(False)`, hence `eval()` (and `from_pretrained`, which ends with it), runs `fuse()` after, so eval
        mode always runs the folded network. Every `eval()` folds again from the current weights, so the
        Trainer's train/evaluate alternation evaluates the weights just trained.
        """
        if mode:
            self.unfuse()
        super().train(mode)
        if not mode:
            self.fuse()
        return self

    def fuse(self) -> SegRetPreTrainedModel:
        """Put a fused module (`SegRetFusedModule`) in place of every unit with a BatchNorm to fold: the stem
        and downsampler convolutions, the decoder's ZIR stage projections and its fuse convolution.

        The outputs are those of the unfused model in eval mode, up to float rounding. The folded weights are
        computed from the current parameters and statistics on every call, and again when those change (see
        `SegRetFusedModule`). While fused, the replaced modules (and their BatchNorms) do not run, so forward
        hooks on them do not fire: call `unfuse()` to run the original modules in eval mode. Needs eval mode,
        whose running statistics are what is folded.
        """
        if self.training:
            raise ValueError(
                "fuse() folds BatchNorm running statistics, which only eval mode uses; call model.eval(), which "
                "fuses the model."
            )
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, SegRetFusedModule):
                    child.fold()
                elif (fused := _fused_module(child)) is not None:
                    setattr(parent, name, fused)
        return self

    def unfuse(self) -> SegRetPreTrainedModel:
        """Put the original modules back in place of the fused ones (a no-op on an unfused model).

        They are the same module objects, with the same parameters and hooks, as before `fuse()`; the state
        dict is the same in both states.
        """
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, SegRetFusedModule):
                    child.release()
                    child.original.train(child.training)
                    setattr(parent, name, child.original)
        return self

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
        return F.relu(self.proj(feature) + _nhwc(self.zero_norm(self.zero_conv(_nchw(feature)))))


class SegRetFusedStageProjection(SegRetFusedModule):
    """`SegRetStageProjection` with its ZIR branch at inference: `Linear(f) + BN(ZeroConv1x1(f))` is one linear
    map of the same input, applied once as a single Linear."""

    replaces = SegRetStageProjection
    folded_from = ("proj", "zero_conv", "zero_norm")

    @classmethod
    def applies_to(cls, module: nn.Module) -> bool:
        return super().applies_to(module) and module.zero_conv is not None  # without ZIR: nothing to fold

    def folded(self) -> dict[str, torch.Tensor]:
        zero_weight, zero_bias = fold_batch_norm(self.zero_conv.weight.flatten(1), self.zero_conv.bias, self.zero_norm)
        return {"folded_weight": self.proj.weight + zero_weight, "folded_bias": self.proj.bias + zero_bias}

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return F.relu(F.linear(feature, self.folded_weight, self.folded_bias))


def fuse_stage_features(
    projections: nn.ModuleList, features: list[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """The decoder's fuse convolution `weight` (`(C, 4C)`) applied to `[F_4, F_3, F_2, F_1]`, each `F_i` (the
    i-th projection of the i-th channels-last stage feature) resized to `F_1`'s size, plus `bias`:
    `(B, C, H_1, W_1)`.

    The fuse conv and bilinear resizing are both linear, so the fuse is applied per stage at that stage's own
    resolution (one C x C slice of the weight each) and the C-channel results are resized and summed. That
    equals resizing and concatenating first up to float rounding, while never building the 4C-channel stride-4
    tensor, and cuts the fuse cost of stages 2-4 by 4x-64x.
    """
    stages = len(features)
    weight_slices = weight.chunk(stages, dim=1)  # slice j multiplies F_{stages - j}
    size = features[0].shape[1:3]
    fused = None
    # Coarsest stage first, so the stride-4 partial (which carries the bias) is added last.
    for index in reversed(range(stages)):
        stage_bias = bias if index == 0 else None
        partial = _nchw(F.linear(projections[index](features[index]), weight_slices[stages - 1 - index], stage_bias))
        if index > 0:  # coarser stages (a same-size resize is exact, and keeps exported graphs size-free)
            partial = F.interpolate(partial, size=size, mode="bilinear", align_corners=False)
        fused = partial if fused is None else fused + partial
    return fused


class SegRetDecodeHead(nn.Module):
    """SegRet's lightweight decoder: resize F_2..F_4 to F_1's size, concatenate `[F_4, F_3, F_2, F_1]`, 1x1
    conv (4C -> C, no bias), BN, ReLU, Dropout2d, 1x1 classifier; the fuse conv runs per stage
    (`fuse_stage_features`)."""

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
        fused = fuse_stage_features(self.linear_c, features, self.linear_fuse.weight.flatten(1))
        return self.classifier(self.dropout(F.relu(self.fuse_norm(fused))))


class SegRetFusedDecodeHead(SegRetFusedModule):
    """`SegRetDecodeHead` at inference: the BatchNorm after the fuse conv folded into the fuse conv's weight and
    a bias. (Its stage projections are fused on their own, as `SegRetFusedStageProjection`.)"""

    replaces = SegRetDecodeHead
    folded_from = ("linear_fuse", "fuse_norm")

    def folded(self) -> dict[str, torch.Tensor]:
        weight, bias = fold_batch_norm(self.linear_fuse.weight.flatten(1), None, self.fuse_norm)
        return {"folded_weight": weight, "folded_bias": bias}

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        fused = fuse_stage_features(self.linear_c, features, self.folded_weight, self.folded_bias)
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


_FUSED_MODULES = (SegRetFusedConvNorm, SegRetFusedStageProjection, SegRetFusedDecodeHead)


def _fused_module(module: nn.Module) -> SegRetFusedModule | None:
    """The fused module that stands in for `module` at inference, folded, or None where there is nothing to fold.

    It is built once and kept on `module`: each `fuse()` after a `train()` brings back the same fused
    objects, so hooks registered on them stay and a compiled model does not meet new modules at every
    evaluation.
    """
    fused_class = next((cls for cls in _FUSED_MODULES if cls.applies_to(module)), None)
    if fused_class is None:
        return None
    fused = module.__dict__.get("_fused")
    if fused is None:
        fused = module.__dict__["_fused"] = fused_class(module)
    fused.train(module.training)
    fused.fold()
    return fused


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
