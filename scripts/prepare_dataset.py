#!/usr/bin/env python
"""Build a Hub-layout parquet dataset (data/*.parquet, id2label.json, README.md) from official archives.

Examples:
    python scripts/prepare_dataset.py --dataset ade20k --source ADEChallengeData2016.zip --output_dir data/ade20k
    python scripts/prepare_dataset.py --dataset cityscapes \\
        --source leftImg8bit_trainvaltest.zip gtFine_trainvaltest.zip --output_dir data/cityscapes --num_proc 4

The work happens in `segret_hf.data.preparation`; this file only runs it (also installed as
`segret-prepare-dataset`). `--help` lists every option.
"""

import sys

from segret_hf.data.preparation import main

if __name__ == "__main__":
    sys.exit(main())
