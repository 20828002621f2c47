"""Class lists, palettes and raw-annotation remapping for the datasets SegRet was trained on.

SegRet was trained and evaluated with mmsegmentation on ADE20K, Cityscapes and COCO-Stuff, so the
class order here is mmsegmentation's (which is also the order of the `id2label` of the Hugging Face
ADE20K checkpoints): a converted checkpoint's logit channel ``k`` means ``class_names[k]``.

Raw annotation files do not store these contiguous ids, so every label set also carries the
mapping from raw annotation values to train ids (``255`` = ignored), exposed as a 256-entry
lookup table by :func:`label_lut` (``train_ids = label_lut(name)[raw_uint8_map]``):

* ADE20K (SceneParsing PNGs, ``scene_parse_150``): 0 is "other" -> 255, class ``k`` is ``k - 1``.
* Cityscapes (``*_gtFine_labelIds.png``): the 34 label ids -> 19 train ids of cityscapesScripts.
* COCO-Stuff 164k (``stuffthingmaps_trainval2017`` PNGs): 0-based COCO ids 0..181 -> 171 classes.
* COCO-Stuff 10k (the ``S`` array of the ``.mat`` files): 1-based COCO ids, 0 = unlabeled.

Maps that are already in train ids (mmsegmentation's ``*_labelTrainIds.png``) need no table.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from ..image_processing_segret import reduce_label_ids

IGNORE_INDEX = 255
"""Train id of pixels excluded from the loss and the metric (mmsegmentation's default)."""

Color = tuple[int, int, int]


@dataclass(frozen=True)
class LabelSet:
    """The classes of one dataset and how its raw annotation values become train ids.

    ``raw_to_train_id`` lists every raw value that has a meaning; any raw value it does not list
    maps to :data:`IGNORE_INDEX`, because unlisted values are either "unlabeled" or ids the dataset
    defines but never trains on.
    """

    name: str
    class_names: tuple[str, ...] = field(repr=False)
    palette: tuple[Color, ...] = field(repr=False)
    raw_to_train_id: Mapping[int, int] = field(repr=False, compare=False)
    source: str = field(default="", repr=False, compare=False)

    @property
    def num_labels(self) -> int:
        """Number of train classes (the model's output channels)."""
        return len(self.class_names)

    @property
    def id2label(self) -> dict[int, str]:
        """``{train_id: class_name}`` in the form `PreTrainedConfig(id2label=...)` takes."""
        return dict(enumerate(self.class_names))

    @property
    def label2id(self) -> dict[str, int]:
        """Inverse of :attr:`id2label`, for `PreTrainedConfig(label2id=...)`."""
        return {label: index for index, label in enumerate(self.class_names)}

    def lut(self) -> np.ndarray:
        """A fresh ``uint8[256]`` table so that ``lut[raw_map]`` is the train-id map."""
        table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for raw, train in self.raw_to_train_id.items():
            if 0 <= raw < 256:
                table[raw] = train
        return table


def generate_palette(num_labels: int) -> list[Color]:
    """Deterministic, pairwise distinct RGB colours for datasets that ship without a palette.

    (hue, saturation, value) follow the 3-D additive recurrence of the plastic number (Roberts'
    R3 sequence), so consecutive ids land far apart and any prefix covers the colour space
    evenly; saturation and value stay high enough to read on an image overlay. A colour that
    coincides with an earlier one after rounding to 8 bits moves to the next free RGB value,
    which keeps colours distinct for any ``num_labels`` up to 2**24.
    """
    if num_labels < 0:
        raise ValueError(f"num_labels must be >= 0, got {num_labels}.")
    if num_labels > 256**3:
        raise ValueError(f"Only 2**24 distinct RGB colours exist; num_labels={num_labels} is too many.")
    plastic = 1.2207440846057596  # real root of x**3 = x + 1
    steps = (1 / plastic, 1 / plastic**2, 1 / plastic**3)
    palette: list[Color] = []
    seen: set[Color] = set()
    for index in range(num_labels):
        hue, sat, val = ((0.5 + index * step) % 1.0 for step in steps)
        r, g, b = colorsys.hsv_to_rgb(hue, 0.45 + 0.55 * sat, 0.5 + 0.5 * val)
        color = (round(r * 255), round(g * 255), round(b * 255))
        while color in seen:  # linear probing in 24-bit RGB space always finds a free colour
            packed = ((color[0] << 16 | color[1] << 8 | color[2]) + 1) % 256**3
            color = (packed >> 16 & 255, packed >> 8 & 255, packed & 255)
        seen.add(color)
        palette.append(color)
    return palette


# --------------------------------------------------------------------------------------------
# ADE20K (SceneParsing, 150 classes)
# --------------------------------------------------------------------------------------------

ADE20K_CLASSES: tuple[str, ...] = (
    # Verbatim from mmsegmentation's ADE20KDataset, identical to the `id2label` of the Hub's
    # ADE20K checkpoints (e.g. nvidia/segformer-*-finetuned-ade-*), including the trailing space
    # of "bed ", so label names compare equal across the ecosystem.
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed ", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing",
    "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister",
    "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)  # fmt: skip

ADE20K_PALETTE: tuple[Color, ...] = (
    # mmsegmentation's ADE20KDataset palette, verbatim (road and skyscraper share (140, 140, 140)).
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)  # fmt: skip

# "Reduce labels" exactly as transformers' `do_reduce_labels` / mmsegmentation's
# `reduce_zero_label`: 0 ("other") -> 255, k -> k - 1, and 255 stays ignored.
_ADE20K_RAW_TO_TRAIN = dict(enumerate(reduce_label_ids(np.arange(255)).tolist()))

ADE20K = LabelSet(
    name="ade20k",
    class_names=ADE20K_CLASSES,
    palette=ADE20K_PALETTE,
    raw_to_train_id=MappingProxyType(_ADE20K_RAW_TO_TRAIN),
    source="mmsegmentation mmseg/datasets/ade.py (ADE20KDataset, reduce_zero_label=True)",
)

# --------------------------------------------------------------------------------------------
# Cityscapes (19 train classes)
# --------------------------------------------------------------------------------------------

CITYSCAPES_LABELS: tuple[tuple[str, int, int, Color], ...] = (
    # (name, id, trainId, color) rows of cityscapesScripts' helpers/labels.py, unchanged:
    # trainId 255 = not trained on; license plate has id -1 / trainId -1 ("never drawn").
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
    ("license plate", -1, -1, (0, 0, 142)),
)

CITYSCAPES_ID_TO_TRAIN_ID: Mapping[int, int] = MappingProxyType(
    # A negative trainId means "not a training class", i.e. ignored, so license plate -> 255.
    {label_id: (train_id if train_id >= 0 else IGNORE_INDEX) for _, label_id, train_id, _ in CITYSCAPES_LABELS}
)
"""Label id (as in ``*_gtFine_labelIds.png``) -> train id; the 35 ids of labels.py."""

_CITYSCAPES_TRAIN_ROWS = sorted(
    (train_id, name, color) for name, _, train_id, color in CITYSCAPES_LABELS if 0 <= train_id < IGNORE_INDEX
)
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(name for _, name, _ in _CITYSCAPES_TRAIN_ROWS)
CITYSCAPES_PALETTE: tuple[Color, ...] = tuple(color for _, _, color in _CITYSCAPES_TRAIN_ROWS)

CITYSCAPES = LabelSet(
    name="cityscapes",
    class_names=CITYSCAPES_CLASSES,
    palette=CITYSCAPES_PALETTE,
    raw_to_train_id=CITYSCAPES_ID_TO_TRAIN_ID,
    source="cityscapesScripts cityscapesscripts/helpers/labels.py; order as mmsegmentation CityscapesDataset",
)

# --------------------------------------------------------------------------------------------
# COCO-Stuff (171 classes: 80 things + 91 stuff)
# --------------------------------------------------------------------------------------------

COCO_STUFF_CLASSES: tuple[str, ...] = (
    # mmsegmentation's COCOStuffDataset: the 80 COCO thing classes, then the 91 stuff classes.
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other",
    "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves",
    "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)  # fmt: skip

COCO_STUFF_PALETTE: tuple[Color, ...] = (
    # mmsegmentation's COCOStuffDataset palette, kept verbatim so renderings match the original
    # SegRet (mmsegmentation) visualisations. It repeats a few colours (e.g. person/bicycle);
    # use `generate_palette(171)` where every class needs its own colour.
    (0, 192, 64), (0, 192, 64), (0, 64, 96), (128, 192, 192), (0, 64, 64), (0, 192, 224),
    (0, 192, 192), (128, 192, 64), (0, 192, 96), (128, 192, 64), (128, 32, 192), (0, 0, 224),
    (0, 0, 64), (0, 160, 192), (128, 0, 96), (128, 0, 192), (0, 32, 192), (128, 128, 224),
    (0, 0, 192), (128, 160, 192), (128, 128, 0), (128, 0, 32), (128, 32, 0), (128, 0, 128),
    (64, 128, 32), (0, 160, 0), (0, 0, 0), (192, 128, 160), (0, 32, 0), (0, 128, 128),
    (64, 128, 160), (128, 160, 0), (0, 128, 0), (192, 128, 32), (128, 96, 128), (0, 0, 128),
    (64, 0, 32), (0, 224, 128), (128, 0, 0), (192, 0, 160), (0, 96, 128), (128, 128, 128),
    (64, 0, 160), (128, 224, 128), (128, 128, 64), (192, 0, 32), (128, 96, 0), (128, 0, 192),
    (0, 128, 32), (64, 224, 0), (0, 0, 64), (128, 128, 160), (64, 96, 0), (0, 128, 192),
    (0, 128, 160), (192, 224, 0), (0, 128, 64), (128, 128, 32), (192, 32, 128), (0, 64, 192),
    (0, 0, 32), (64, 160, 128), (128, 64, 64), (128, 0, 160), (64, 32, 128), (128, 192, 192),
    (0, 0, 160), (192, 160, 128), (128, 192, 0), (128, 0, 96), (192, 32, 0), (128, 64, 128),
    (64, 128, 96), (64, 160, 0), (0, 64, 0), (192, 128, 224), (64, 32, 0), (0, 192, 128),
    (64, 128, 224), (192, 160, 0), (0, 192, 0), (192, 128, 96), (192, 96, 128), (0, 64, 128),
    (64, 0, 96), (64, 224, 128), (128, 64, 0), (192, 0, 224), (64, 96, 128), (128, 192, 128),
    (64, 0, 224), (192, 224, 128), (128, 192, 64), (192, 0, 96), (192, 96, 0), (128, 64, 192),
    (0, 128, 96), (0, 224, 0), (64, 64, 64), (128, 128, 224), (0, 96, 0), (64, 192, 192),
    (0, 128, 224), (128, 224, 0), (64, 192, 64), (128, 128, 96), (128, 32, 128), (64, 0, 192),
    (0, 64, 96), (0, 160, 128), (192, 0, 64), (128, 64, 224), (0, 32, 128), (192, 128, 192),
    (0, 64, 224), (128, 160, 128), (192, 128, 0), (128, 64, 32), (128, 32, 64), (192, 0, 128),
    (64, 192, 32), (0, 160, 64), (64, 0, 0), (192, 192, 160), (0, 32, 64), (64, 128, 128),
    (64, 192, 160), (128, 160, 64), (64, 128, 0), (192, 192, 32), (128, 96, 192), (64, 0, 128),
    (64, 64, 32), (0, 224, 192), (192, 0, 0), (192, 64, 160), (0, 96, 192), (192, 128, 128),
    (64, 64, 160), (128, 224, 192), (192, 128, 64), (192, 64, 32), (128, 96, 64), (192, 0, 192),
    (0, 192, 32), (64, 224, 64), (64, 0, 64), (128, 192, 160), (64, 96, 64), (64, 128, 192),
    (0, 192, 160), (192, 224, 64), (64, 128, 64), (128, 192, 32), (192, 32, 192), (64, 64, 192),
    (0, 64, 32), (64, 160, 192), (192, 64, 64), (128, 64, 160), (64, 32, 192), (192, 192, 192),
    (0, 64, 160), (192, 160, 192), (192, 192, 0), (128, 64, 96), (192, 32, 64), (192, 64, 128),
    (64, 192, 96), (64, 160, 64), (64, 64, 0),
)  # fmt: skip

COCO_STUFF_UNUSED_IDS: tuple[int, ...] = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
"""0-based COCO ids (1-based 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91) that COCO defines but
never annotates; the other 171 of 0..181 become the contiguous classes in order."""

COCO_STUFF_ID_TO_TRAIN_ID: Mapping[int, int] = MappingProxyType(
    {
        raw: train
        for train, raw in enumerate(raw for raw in range(182) if raw not in COCO_STUFF_UNUSED_IDS)
    }
)
"""0-based COCO-Stuff id (the value in the 164k ``stuffthingmaps`` PNGs) -> class 0..170; the
table of mmsegmentation's tools/dataset_converters/coco_stuff164k.py. Unused ids and 255
(unlabeled) are not listed and therefore map to 255."""

COCO_STUFF = LabelSet(
    name="coco-stuff",
    class_names=COCO_STUFF_CLASSES,
    palette=COCO_STUFF_PALETTE,
    raw_to_train_id=COCO_STUFF_ID_TO_TRAIN_ID,
    source="mmsegmentation mmseg/datasets/coco_stuff.py + tools/dataset_converters/coco_stuff164k.py",
)

COCO_STUFF_10K = LabelSet(
    # The 10k release (the paper's "COCO-Stuff10K") stores 1-based ids with 0 = unlabeled in its
    # .mat files; mmsegmentation's coco_stuff10k.py converter plus reduce_zero_label amount to
    # the 164k table shifted by one.
    name="coco-stuff-10k",
    class_names=COCO_STUFF_CLASSES,
    palette=COCO_STUFF_PALETTE,
    raw_to_train_id=MappingProxyType({raw + 1: train for raw, train in COCO_STUFF_ID_TO_TRAIN_ID.items()}),
    source="mmsegmentation tools/dataset_converters/coco_stuff10k.py with reduce_zero_label=True",
)

# --------------------------------------------------------------------------------------------
# Lookup by name
# --------------------------------------------------------------------------------------------

LABEL_SETS: Mapping[str, LabelSet] = MappingProxyType(
    {label_set.name: label_set for label_set in (ADE20K, CITYSCAPES, COCO_STUFF, COCO_STUFF_10K)}
)
"""Canonical name -> label set."""

# Spellings seen in configs and Hub dataset names, compared after lower-casing and dropping
# "-", "_" and spaces (so "coco_stuff", "COCO-Stuff" and "cocostuff" all match).
_ALIASES = {
    "ade20k": "ade20k",
    "ade": "ade20k",
    "sceneparse150": "ade20k",
    "cityscapes": "cityscapes",
    "cocostuff": "coco-stuff",
    "cocostuff164k": "coco-stuff",
    "cocostuff10k": "coco-stuff-10k",
}


def canonical_name(name: str) -> str:
    """Map any accepted spelling of a dataset name to its key in :data:`LABEL_SETS`."""
    squashed = "".join(ch for ch in name.lower() if ch not in "-_ ")
    if squashed not in _ALIASES:
        raise ValueError(
            f"Unknown dataset name {name!r}; valid names are {', '.join(repr(n) for n in LABEL_SETS)} "
            "(case, '-' and '_' are ignored, e.g. 'coco_stuff')."
        )
    return _ALIASES[squashed]


def get_label_set(name: str) -> LabelSet:
    """The :class:`LabelSet` for ``"ade20k"``, ``"cityscapes"``, ``"coco-stuff"`` or ``"coco-stuff-10k"``."""
    return LABEL_SETS[canonical_name(name)]


def get_id2label(name: str) -> dict[int, str]:
    """``{train_id: class_name}`` of a dataset, ready for `SegRetConfig(id2label=...)`."""
    return get_label_set(name).id2label


def label_lut(name: str) -> np.ndarray:
    """``uint8[256]`` raw-annotation -> train-id table of a dataset (see the module docstring)."""
    return get_label_set(name).lut()
