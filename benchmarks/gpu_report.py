"""SegRet on a CUDA device: correctness, speed, utilisation and memory; see benchmarks/README.md ("GPU") and
`python benchmarks/gpu_report.py --help`."""

from __future__ import annotations

import sys
from pathlib import Path

# The suite lives next to this script (benchmarks/segret_bench), not in the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from segret_bench.gpu_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
