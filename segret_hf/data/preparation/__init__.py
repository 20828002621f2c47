"""Hub-layout parquet datasets built from the official ADE20K, Cityscapes and COCO-Stuff archives.

`datasets` no longer runs loading scripts (so `scene_parse_150` no longer loads) and Cityscapes and
COCO-Stuff have no Hub copy; `scripts/prepare_dataset.py` (`segret-prepare-dataset`) turns the official
downloads into a folder that `datasets.load_dataset`, training and evaluation read directly. One module per
concern: `sources` (zip archives and folders), `layouts` (where each release keeps what, and pairing),
`rows` (decoding and checks), `shards` (parquet files), `card` (README and id2label.json), `prepare` (the run).
"""

from .errors import DatasetPreparationError
from .layouts import LAYOUTS, DatasetLayout
from .prepare import PrepareArguments, main, prepare_dataset

__all__ = ["LAYOUTS", "DatasetLayout", "DatasetPreparationError", "PrepareArguments", "main", "prepare_dataset"]
