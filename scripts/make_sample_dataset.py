#!/usr/bin/env python
"""Regenerate the synthetic sample dataset shipped in segret_hf/training/sample_data (deterministic).

    python scripts/make_sample_dataset.py [--output_dir DIR] [--num_train 40] [--num_validation 10] [--seed 0]

The options and the work are in `segret_hf.training.sample_data`.
"""

import sys

from segret_hf.training.sample_data import main

if __name__ == "__main__":
    sys.exit(main())
