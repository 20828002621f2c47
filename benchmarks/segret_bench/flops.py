"""Parameters and FLOPs per image, counted with `torch.utils.flop_counter.FlopCounterMode`.

Method: one batch-1 forward in eval mode on the *meta* device, so no arithmetic runs and any size is counted
in a fraction of a second. The counter counts matrix products and convolutions (`mm`, `addmm`, `bmm`,
`convolution`, the SDPA kernels) at 2 FLOPs per multiply-accumulate; it does not count element-wise work
(activations, normalisations, softmax, additions, the decay bias, interpolation). The meta device matters for
attention: on a real CPU, SDPA runs `_scaled_dot_product_flash_attention_for_cpu`, which the counter has no
formula for (the attention would silently count as zero), while on meta SDPA decomposes into two `bmm`s that
are counted. SegRet is counted with its `sdpa` implementation: `eager` does the same products and
`flex_attention` the same attention, so FLOPs do not depend on the implementation.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import ModelSpec, build_model, count_parameters

FLOP_METHOD = (
    "torch.utils.flop_counter.FlopCounterMode on a batch-1 eval forward on the meta device; counts mm/addmm/bmm, "
    "convolutions and SDPA (as its two batched matmuls) at 1 multiply-accumulate = 2 FLOPs; does not count "
    "element-wise ops (activations, LayerNorm/BatchNorm, softmax, residual adds, the decay bias, interpolation). "
    "Papers that quote 'FLOPs' from mmcv/fvcore count multiply-accumulates, i.e. half of these numbers."
)


def count_parameters_and_flops(spec: ModelSpec, height: int, width: int) -> tuple[int, float]:
    """(parameters, GFLOPs per image) of `spec` at `height` x `width`."""
    counted = replace(spec, implementation="sdpa" if spec.family == "segret" else spec.implementation, compiled=False)
    meta = torch.device("meta")
    with torch.device(meta):
        model = build_model(counted, meta, torch.float32)
        pixel_values = torch.empty(1, 3, height, width)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(pixel_values=pixel_values)
    return count_parameters(model), counter.get_total_flops() / 1e9
