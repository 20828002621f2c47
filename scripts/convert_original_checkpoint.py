#!/usr/bin/env python
"""Convert an original SegRet (mmsegmentation) or RMT (ImageNet) checkpoint to a transformers folder.

    python scripts/convert_original_checkpoint.py --checkpoint segret_tiny_ade.pth --variant tiny \
        --id2label ade20k --output_dir segret-tiny-ade-512-512

Also installed as `segret-convert`; the options (`--help`) and the work are in `segret_hf.cli.convert`.
"""

import sys

from segret_hf.cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
