#!/usr/bin/env python
"""Evaluate a SegRet (or any transformers semantic-segmentation) model on a dataset split: mIoU & co.

    python scripts/evaluate.py --model path/to/model --dataset_name data/ade20k --dataset_preset ade20k \
        --split validation --output_file results.json [--multi_scale --flip | --sliding_window --window 512]

Also installed as `segret-evaluate`; the options (`--help`) and the work are in `segret_hf.cli.evaluate`.
"""

import sys

from segret_hf.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
