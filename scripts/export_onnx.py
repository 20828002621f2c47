#!/usr/bin/env python
"""Export a SegRet model to ONNX for any batch, height and width, and check it against PyTorch.

Example:
    python scripts/export_onnx.py --model outputs/sample --output exports/sample/model.onnx

The work happens in `segret_hf.onnx_export`; this file only runs it (also installed as `segret-export-onnx`).
`--help` lists every option. Needs the ONNX extra: pip install "segret-hf[onnx]".
"""

import sys

from segret_hf.onnx_export import main

if __name__ == "__main__":
    sys.exit(main())
