#!/usr/bin/env python
"""Regenerate the synthetic sample dataset shipped in segret_hf/training/sample_data (deterministic).

    python scripts/make_sample_dataset.py [--output_dir DIR] [--num_train 40] [--num_validation 10] [--seed 0]
"""

import argparse

from segret_hf.training.sample_data import SAMPLE_DATASET_DIR, generate_sample_dataset

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(SAMPLE_DATASET_DIR))
    parser.add_argument("--num_train", type=int, default=40)
    parser.add_argument("--num_validation", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(generate_sample_dataset(args.output_dir, args.num_train, args.num_validation, args.seed))
