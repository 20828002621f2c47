"""Manhattan-decay retention (MaSA) kernels for SegRet.

Retention is softmax attention whose logits get an additive bias `decay[h] * distance(p, q)`, with a
negative per-head `decay` and the Manhattan distance between token positions. Two forms exist:

* *decomposed*: attend along each row with `decay * |x_p - x_q|`, then along each column with
  `decay * |y_p - y_q|`, the column pass using the row pass's output as values;
* *whole*: one attention over all `H * W` tokens with `decay * (|y_p - y_q| + |x_p - x_q|)`.

Each form has interchangeable implementations, chosen with transformers' `attn_implementation`:

* `eager`: the reference maths, written like the original RMT code (softmax of an explicit score matrix);
* `sdpa`: `torch.nn.functional.scaled_dot_product_attention` with the decay as a 4-D additive mask, which
  lets CPU and CUDA use their fused kernels (a 3-D mask sends CPU SDPA down its unfused math path);
* `flex_attention`: whole-image stages compute the decay from token indices inside the kernel
  (`score_mod`), so no `(heads, HW, HW)` bias is ever materialised; decomposed stages, whose biases are
  tiny, use `sdpa`;
* any other function registered with transformers' `AttentionInterface`: called through
  `ALL_ATTENTION_FUNCTIONS` with the decay as its 4-D additive `attention_mask`, as transformers calls
  `sdpa`. The three above keep their own kernels: the interface's output layout costs a copy per call, and
  its `flex_attention` cannot compute the decay from token indices.

Only `eager` forms the attention probabilities explicitly, so only it returns them (`output_attentions`).

Biases depend only on the stage, the heads and the feature size, so `RetentionBias.build` runs once per
stage and forward pass and all blocks of the stage share the result.

Under `torch.export` (and so `torch.onnx.export(..., dynamo=True)`) the feature size is symbolic: a size test
in Python would be decided once, on the example input, and the graph would keep that choice for every size
(a whole-image bias, quadratic in the number of tokens). Exported graphs therefore always attend in chunks of
queries inside a `scan` loop that the graph keeps (an ONNX `Scan`), each chunk building only its own slice of
the bias, so their memory grows linearly with the image at any size. PyTorch execution, `torch.compile`
included, is unaffected (`is_exporting`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo import config as dynamo_config
from torch._higher_order_ops.scan import scan
from torch.nn.attention.flex_attention import flex_attention
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

RetentionWeights = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None
"""Attention probabilities of one retention layer, returned by `eager` only (None otherwise).

Whole-image layers give one `(batch, heads, H*W, H*W)` tensor (queries and keys in row-major order).
Decomposed layers give the pair `(rows, columns)`: `rows` `(batch, H, heads, W, W)` holds, for each image
row, the attention between its W tokens; `columns` `(batch, W, heads, H, H)` the same for each column.
"""


def is_exporting() -> bool:
    """True while `torch.export` traces the model, False under `torch.compile` and in eager execution.

    `torch.compiler.is_exporting()` alone is not enough: Dynamo in torch 2.11 answers True for every traced
    call, `torch.compile` included, which sent compiled models down the export-only `scan` loop (Inductor then
    fails on it). The flag that torch.export sets for its whole trace tells the two apart on every version.
    """
    return torch.compiler.is_exporting() and getattr(torch.compiler, "_is_exporting_flag", True)


# Registered attention functions that cannot add a bias to the logits (or need a generation cache).
_BIASLESS_IMPLEMENTATIONS = ("flash_attention", "paged|")


def retention_decay(
    num_heads: int, init_value: float, heads_range: float, device: torch.device | None = None
) -> torch.Tensor:
    """Per-head (negative, natural-log) decay rates, `log(1 - 2 ** (-init_value - heads_range * h / n))`."""
    heads = torch.arange(num_heads, dtype=torch.float32, device=device)
    return torch.log(1 - 2 ** (-init_value - heads_range * heads / num_heads))


def _axis_distance(length: int, device: torch.device) -> torch.Tensor:
    index = torch.arange(length, device=device, dtype=torch.float32)
    return (index[:, None] - index[None, :]).abs()


# Largest whole-stage bias `sdpa` materialises at once. Above it (e.g. SegRet-tiny's stage 3 on a whole
# 1024x2048 image: 8 heads x 8192^2 tokens = 2 GiB) queries are processed in bands of image rows, each with
# its own slice of the bias, so memory stays bounded for any input size.
FULL_BIAS_BUDGET_BYTES = 256 * 2**20


def _manhattan_bias(
    column: torch.Tensor, row: torch.Tensor, first_row: int = 0, rows: int | None = None
) -> torch.Tensor:
    """`(1, heads, rows*W, HW)` bias `decay * (|dy| + |dx|)` for the queries in image rows `first_row` on.

    `column` `(1, heads, H, H)` and `row` `(1, heads, W, W)` are the per-axis decays; the 2-D bias is their
    broadcast sum, written in a single allocation.
    """
    heads, height, width = column.shape[1], column.shape[2], row.shape[2]
    rows = height - first_row if rows is None else rows
    vertical = column[0, :, first_row : first_row + rows]  # (heads, rows, H)
    bias = vertical[:, :, None, :, None] + row[0][:, None, :, None, :]  # (heads, rows, W, H, W)
    return bias.reshape(1, heads, rows * width, height * width)


@dataclass
class RetentionBias:
    """The decay of one stage at one feature size, in the form its attention implementation needs.

    `row` `(1, heads, W, W)` and `column` `(1, heads, H, H)` are the per-axis decays. Decomposed stages use
    them directly; whole stages under `eager`/`sdpa` use `full` `(1, heads, HW, HW)`, except that `sdpa`
    leaves `full` unset when it would exceed `FULL_BIAS_BUDGET_BYTES` and assembles it band by band from
    `row`/`column`, and exported graphs always do; `flex_attention` only needs `decay`.
    """

    decay: torch.Tensor
    height: int
    width: int
    row: torch.Tensor | None = None
    column: torch.Tensor | None = None
    full: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        decay: torch.Tensor,
        height: int,
        width: int,
        decomposed: bool,
        implementation: str,
        dtype: torch.dtype,
    ) -> RetentionBias:
        if implementation == "flex_attention" and not decomposed:
            return cls(decay, height, width)
        scale = decay[None, :, None, None]
        row = (scale * _axis_distance(width, decay.device)).to(dtype)
        column = (scale * _axis_distance(height, decay.device)).to(dtype)
        bias = cls(decay, height, width, row=row, column=column)
        if decomposed or is_exporting():  # exported graphs build bias slices in their loop
            return bias
        full_bytes = decay.shape[0] * (height * width) ** 2 * row.element_size()
        if implementation == "eager" or full_bytes <= FULL_BIAS_BUDGET_BYTES:
            bias.full = _manhattan_bias(column, row)
        return bias


# `attend(q, k, v, additive_bias)` on `(batch, heads, length, d)` tensors -> output `(batch, heads, length, d)`
# and the attention probabilities when the kernel forms them (eager) or None.
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """`(B, H, W, C)` -> `(B, H, W, heads, d)` view."""
    return x.unflatten(-1, (num_heads, -1))


def _eager_attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2)) + bias
    weights = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    return torch.matmul(weights, v), weights


def _sdpa_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, None]:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias), None


def _interface_attend(implementation: str, module: nn.Module | None) -> Attend:
    """A function registered with transformers' `AttentionInterface`, called with its convention: the bias as
    `attention_mask`, output `(batch, length, heads, d)`, turned back into this module's layout."""
    function = ALL_ATTENTION_FUNCTIONS[implementation]

    def attend(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, weights = function(module, q, k, v, bias, scaling=q.shape[-1] ** -0.5, dropout=0.0, is_causal=False)
        return out.transpose(1, 2), weights

    return attend


def _decomposed(
    attend: Attend,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: RetentionBias,
    num_heads: int,
) -> tuple[torch.Tensor, RetentionWeights]:
    """Row pass then column pass. Inputs and output are `(B, H, W, C)`."""
    batch, height, width, channels = q.shape
    # Rows: one sequence of length W per (batch, row): (B*H, heads, W, d), a view of the projections.
    q_row, k_row, v_row = (_split_heads(t, num_heads).flatten(0, 1).transpose(1, 2) for t in (q, k, v))
    rows, row_weights = attend(q_row, k_row, v_row, bias.row)
    rows = rows.transpose(1, 2).unflatten(0, (batch, height))  # (B, H, W, heads, d)
    # Columns: one sequence of length H per (batch, column): (B*W, heads, H, d).
    q_col, k_col = (_split_heads(t, num_heads).permute(0, 2, 3, 1, 4).flatten(0, 1) for t in (q, k))
    v_col = rows.permute(0, 2, 3, 1, 4).flatten(0, 1)
    out, column_weights = attend(q_col, k_col, v_col, bias.column)
    out = out.transpose(1, 2).unflatten(0, (batch, width))  # (B, W, H, heads, d)
    weights = None
    if row_weights is not None and column_weights is not None:
        weights = (row_weights.unflatten(0, (batch, height)), column_weights.unflatten(0, (batch, width)))
    return out.transpose(1, 2).reshape(batch, height, width, channels), weights


def _whole(
    attend: Attend,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: RetentionBias,
    num_heads: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Full attention over the `H * W` tokens. Inputs and output are `(B, H, W, C)`."""
    batch, height, width, channels = q.shape
    q, k, v = (_split_heads(t, num_heads).flatten(1, 2).transpose(1, 2) for t in (q, k, v))  # (B, heads, HW, d)
    if bias.full is not None:
        out, weights = attend(q, k, v, bias.full)
    elif is_exporting():
        out, weights = _whole_in_scan(attend, q, k, v, bias), None
    else:
        band_bytes = num_heads * width * height * width * bias.row.element_size()  # one image row of queries
        rows = max(1, FULL_BIAS_BUDGET_BYTES // band_bytes)
        bands, band_weights = [], []
        for first in range(0, height, rows):
            band_bias = _manhattan_bias(bias.column, bias.row, first, min(rows, height - first))
            band, band_weight = attend(q[:, :, first * width : (first + rows) * width], k, v, band_bias)
            bands.append(band)
            band_weights.append(band_weight)
        out = torch.cat(bands, dim=2)
        weights = None if any(w is None for w in band_weights) else torch.cat(band_weights, dim=2)
    return out.transpose(1, 2).reshape(batch, height, width, channels), weights


# Chunk sizes of exported graphs: query tokens per chunk of whole-image attention, image rows (row pass) or
# columns (column pass) per chunk of decomposed attention. Constants, because a chunk size computed from the
# symbolic input size would make torch.export specialise the graph to the example input's size.
EXPORT_CHUNK_TOKENS = 256
EXPORT_CHUNK_LINES = 8


def _scan_chunks(
    body: Callable[[torch.Tensor], torch.Tensor], length: int | torch.SymInt, chunk: int, device: torch.device
) -> torch.Tensor:
    """`torch.stack([body(indices) for indices in consecutive chunks of range(length)])`, as one `scan`.

    A Python loop over a symbolic length cannot be exported; a scan becomes a loop of the graph (ONNX `Scan`).
    Each step gathers its slice of the inputs by index: an exported graph has no views, so slicing or padding
    whole inputs would copy them. Every step has the same shapes, so the last chunk is filled up with index 0
    and the caller cuts off its outputs. (A scan needs a carried value; a step counter serves.)
    """
    steps = (length + chunk - 1) // chunk
    indices = F.pad(torch.arange(length, device=device), (0, steps * chunk - length)).view(steps, chunk)
    counter = torch.zeros((), dtype=torch.int64, device=device)
    _, out = scan(lambda step, chunk_indices: (step + 1, body(chunk_indices)), counter, indices)
    return out


def _decomposed_in_scan(
    attend: Attend, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: RetentionBias, num_heads: int
) -> torch.Tensor:
    """Decomposed retention of `(B, H, W, C)` tensors in chunks of image rows, then of columns, in two scans."""
    height, width = q.shape[1:3]

    def along_lines(
        q_lines: torch.Tensor, k_lines: torch.Tensor, v_lines: torch.Tensor, line_bias: torch.Tensor
    ) -> torch.Tensor:
        """Attention along dim 2 of `(B, lines, length, C)` tensors, one sequence per line, as `_decomposed`."""
        shape = q_lines.shape
        heads_first = (_split_heads(t, num_heads).flatten(0, 1).transpose(1, 2) for t in (q_lines, k_lines, v_lines))
        out, _ = attend(*heads_first, line_bias)  # (B * lines, heads, length, d)
        return out.transpose(1, 2).reshape(shape)

    def rows_chunk(index: torch.Tensor) -> torch.Tensor:  # (B, G, W, C)
        return along_lines(q[:, index], k[:, index], v[:, index], bias.row)

    rows = _scan_chunks(rows_chunk, height, EXPORT_CHUNK_LINES, q.device)  # (steps, B, G, W, C)
    rows = rows.transpose(0, 1).flatten(1, 2)[:, :height]

    def columns_chunk(index: torch.Tensor) -> torch.Tensor:  # (B, H, G, C)
        lines = (t[:, :, index].transpose(1, 2) for t in (q, k, rows))
        return along_lines(*lines, bias.column).transpose(1, 2)

    columns = _scan_chunks(columns_chunk, width, EXPORT_CHUNK_LINES, q.device)  # (steps, B, H, G, C)
    return columns.permute(1, 2, 0, 3, 4).flatten(2, 3)[:, :, :width]


def _whole_in_scan(
    attend: Attend, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: RetentionBias
) -> torch.Tensor:
    """Whole-image attention of `(B, heads, HW, d)` tensors in chunks of query tokens inside a `scan`.

    Each chunk gathers its queries' rows of the per-axis decays and sums them into its `(heads, tokens, HW)` slice
    of the Manhattan bias, the same sum `_manhattan_bias` computes.
    """
    column, row, height, width = bias.column[0], bias.row[0], bias.height, bias.width
    tokens = q.shape[2]
    # Each token's image row and column, from broadcast ranges (the exporter cannot divide token indices by a
    # symbolic width).
    token_y = torch.arange(height, device=q.device)[:, None].expand(height, width).flatten()
    token_x = torch.arange(width, device=q.device)[None, :].expand(height, width).flatten()

    def band(index: torch.Tensor) -> torch.Tensor:  # (B, heads, T, d)
        band_bias = column[:, token_y[index], :, None] + row[:, token_x[index], None, :]  # (heads, T, H, W)
        return attend(q[:, :, index], k, v, band_bias.flatten(2)[None])[0]

    out = _scan_chunks(band, tokens, EXPORT_CHUNK_TOKENS, q.device)  # (steps, B, heads, T, d)
    return out.permute(1, 2, 0, 3, 4).flatten(2, 3)[:, :, :tokens]


# Compiled FlexAttention kernels are specialised to the dtype, the number of heads and the head size, so one
# process running several variants and precisions needs more of them than Dynamo's default recompile limit (8)
# of the one compiled function; past that limit it would silently run FlexAttention uncompiled, which
# materialises every score matrix (6.7 GB above the weights for SegRet-tiny at 1024x2048 on an H100, against
# 0.6 GB with `sdpa`).
FLEX_RECOMPILE_LIMIT = 64
# FlexAttention's GPU kernels need a head size of at least 16; smaller heads are zero-padded to it.
FLEX_MIN_HEAD_SIZE = 16


@lru_cache(maxsize=1)
def _compiled_flex_attention() -> Callable[..., torch.Tensor]:
    """FlexAttention only avoids materialising scores when compiled; compile it once per process."""
    return torch.compile(flex_attention)


def _flex_whole(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: RetentionBias, num_heads: int
) -> tuple[torch.Tensor, None]:
    """Whole-image retention with the Manhattan decay computed from token indices inside the kernel."""
    batch, height, width, channels = q.shape
    q, k, v = (_split_heads(t, num_heads).flatten(1, 2).transpose(1, 2) for t in (q, k, v))
    head_size = q.shape[-1]
    if head_size < FLEX_MIN_HEAD_SIZE:  # zeros add nothing to q.k and give output columns that are dropped
        q, k, v = (F.pad(t, (0, FLEX_MIN_HEAD_SIZE - head_size)) for t in (q, k, v))
    decay, row_length = bias.decay, bias.width

    def manhattan_decay(score, b, h, q_idx, kv_idx):
        distance = (q_idx // row_length - kv_idx // row_length).abs() + (q_idx % row_length - kv_idx % row_length).abs()
        return score + decay[h] * distance

    if torch.compiler.is_compiling():  # inside a user's torch.compile: traced into their graph
        out = flex_attention(q, k, v, score_mod=manhattan_decay, scale=head_size**-0.5)
    else:
        with dynamo_config.patch(recompile_limit=FLEX_RECOMPILE_LIMIT):
            out = _compiled_flex_attention()(q, k, v, score_mod=manhattan_decay, scale=head_size**-0.5)
    out = out[..., :head_size]
    return out.transpose(1, 2).reshape(batch, height, width, channels), None


def retention_attention(
    implementation: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: RetentionBias,
    num_heads: int,
    decomposed: bool,
    module: nn.Module | None = None,
) -> tuple[torch.Tensor, RetentionWeights]:
    """Retention of channels-last `(B, H, W, C)` queries, keys and values with the given implementation.

    Returns the output `(B, H, W, C)` and the attention probabilities (`RetentionWeights`: `eager` only).
    `module` is handed to functions registered with transformers' `AttentionInterface`, as transformers does.
    """
    if implementation == "flex_attention" and not decomposed:
        return _flex_whole(q, k, v, bias, num_heads)
    if implementation == "eager":
        attend = _eager_attend
    elif implementation in ("sdpa", "flex_attention"):
        attend = _sdpa_attend
    elif implementation in ALL_ATTENTION_FUNCTIONS and not implementation.startswith(_BIASLESS_IMPLEMENTATIONS):
        attend = _interface_attend(implementation, module)
    else:
        raise ValueError(
            f"SegRet cannot use the attention implementation {implementation!r}: retention adds a distance bias to "
            "every logit. Use 'eager', 'sdpa', 'flex_attention', or a function registered with transformers' "
            "AttentionInterface that adds its 4-D `attention_mask` to the logits."
        )
    if not decomposed:
        return _whole(attend, q, k, v, bias, num_heads)
    if is_exporting():
        return _decomposed_in_scan(attend, q, k, v, bias, num_heads), None
    return _decomposed(attend, q, k, v, bias, num_heads)


__all__ = ["RetentionBias", "RetentionWeights", "retention_attention", "retention_decay"]
