"""Dataset facts (classes, palettes, label remapping), labels (decoding, checks, class names) and per-dataset defaults."""

from .label_maps import (
    LabelMapError,
    LabelMapping,
    dataset_id2label,
    label_map_array,
    parse_id2label_spec,
    reduce_labels,
)
from .label_sets import (
    IGNORE_INDEX,
    LABEL_SETS,
    LabelSet,
    canonical_name,
    generate_palette,
    get_id2label,
    get_label_set,
    label_lut,
)
from .presets import DATASET_PRESETS, MULTI_SCALE_RATIOS, DatasetPreset, get_preset

__all__ = [
    "DATASET_PRESETS",
    "IGNORE_INDEX",
    "LABEL_SETS",
    "MULTI_SCALE_RATIOS",
    "DatasetPreset",
    "LabelMapError",
    "LabelMapping",
    "LabelSet",
    "canonical_name",
    "dataset_id2label",
    "generate_palette",
    "get_id2label",
    "get_label_set",
    "get_preset",
    "label_lut",
    "label_map_array",
    "parse_id2label_spec",
    "reduce_labels",
]
