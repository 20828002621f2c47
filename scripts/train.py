#!/usr/bin/env python
"""Train or fine-tune SegRet for semantic segmentation with the Hugging Face Trainer.

    python scripts/train.py --model_variant tiny --output_dir outputs/sample
    accelerate launch scripts/train.py --dataset_name data/ade20k --dataset_preset ade20k \
        --model_variant tiny --backbone_checkpoint rmt_t.pth --output_dir segret-tiny-ade --bf16

`data/ade20k` is a folder written by `scripts/prepare_dataset.py` from the official archive. Every
`TrainingArguments` flag works; see `--help`. The work is done by `segret_hf.training.run`. Exit status 2,
with one `error:` line naming the problem, on bad input or a full disk.
"""

import sys

from segret_hf.training.run import cli

if __name__ == "__main__":
    sys.exit(cli())
