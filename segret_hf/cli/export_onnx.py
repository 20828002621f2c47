"""`segret-export-onnx` (`scripts/export_onnx.py`): a SegRet model -> one ONNX graph for any batch and image size.

    segret-export-onnx --model outputs/sample --output exports/sample/model.onnx [--dtype float16]

The graph is checked against PyTorch with onnxruntime on three sizes and a batch of two (`--no_verify` skips
it); `config.json` and `preprocessor_config.json` are written beside it. The work is in
:mod:`segret_hf.onnx_export`. Exit status 1 when the graph fails the check (nothing is written), 2 with one
`error:` line on bad arguments or inputs. Needs the ONNX extra: pip install "segret-hf[onnx]".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..inference import load_model_and_processor
from ..onnx_export import (
    DEFAULT_MAX_SIDE,
    DEFAULT_OPSET,
    DTYPES,
    MIN_SIDE,
    OnnxVerificationError,
    check_attn_implementation,
    check_destination,
    check_max_side,
    export_onnx,
)
from .errors import report_error
from .parsing import command_parser


@dataclass
class OnnxExportArguments:
    """Options of `segret-export-onnx`: the model, the file to write, and how to trace and check it."""

    model: str = field(metadata={"help": "SegRet model folder or Hub id, saved with its image processor."})
    output: str = field(
        metadata={"help": "The .onnx file to write; config.json and preprocessor_config.json are written beside it."}
    )
    opset: int = field(default=DEFAULT_OPSET, metadata={"help": "ONNX opset version."})
    dtype: str = field(
        default="float32",
        metadata={"help": "Precision of the graph's weights, input and output.", "choices": list(DTYPES)},
    )
    max_side: int = field(
        default=DEFAULT_MAX_SIDE,
        metadata={
            "help": f"Largest image height or width the graph is exported for (the smallest is {MIN_SIDE}); recorded "
            "in the graph's metadata and enforced by segret_hf.onnx_inference."
        },
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={
            "help": "Attention kernels to trace: sdpa or eager (the same weights and results). flex_attention "
            "cannot be exported."
        },
    )
    no_verify: bool = field(
        default=False,
        metadata={"help": "Skip the onnxruntime check against PyTorch (three sizes and a batch of two)."},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace an existing output file and the config files beside it."}
    )


def main(argv: list[str] | None = None) -> int:
    """Export; returns the process exit status (0 written, 1 failed verification, 2 bad input)."""
    (args,) = command_parser(OnnxExportArguments, __doc__).parse_args_into_dataclasses(args=argv)
    try:
        check_attn_implementation(args.attn_implementation)
        check_max_side(args.max_side)
        check_destination(args.output, args.overwrite)  # before the minutes of loading and tracing
        model, image_processor = load_model_and_processor(args.model)
        model.set_attn_implementation(args.attn_implementation)
        print(f"Exporting {args.model} ({args.dtype}, opset {args.opset}) to {args.output} ...", file=sys.stderr)
        checks = export_onnx(
            model,
            args.output,
            image_processor,
            opset=args.opset,
            dtype=args.dtype,
            max_side=args.max_side,
            verify=not args.no_verify,
            overwrite=args.overwrite,
        )
    except OnnxVerificationError as error:
        print("\n".join(check.describe() for check in error.checks), file=sys.stderr)
        return report_error(f"the graph does not reproduce the PyTorch model; {args.output} was not written.", 1)
    except (ValueError, OSError, ImportError) as error:  # bad input: the message names it and the fix
        return report_error(error, 2)
    for check in checks:
        print(check.describe())
    print(f"Wrote {args.output} with config.json and preprocessor_config.json beside it.")
    return 0
