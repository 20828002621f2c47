#!/usr/bin/env python
"""Export a SegRet model to ONNX for any batch, height and width, and check it against PyTorch.

    python scripts/export_onnx.py --model outputs/sample --output exports/sample/model.onnx

Also installed as `segret-export-onnx`; the options (`--help`) and the work are in `segret_hf.cli.export_onnx`.
Needs the ONNX extra: pip install "segret-hf[onnx]".
"""

import sys

from segret_hf.cli.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
