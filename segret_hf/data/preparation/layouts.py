"""Where each dataset's official release keeps its images and annotations, and how they pair up.

Every path is matched after an optional prefix, so the archive's own top folder (`ADEChallengeData2016/`),
a folder it was extracted into (`cityscapes/gtFine/...`) or none at all are accepted alike. Pairs follow the
official naming rules:

* ADE20K `ADEChallengeData2016.zip`: `images/{training,validation}/ADE_*.jpg` <->
  `annotations/{training,validation}/ADE_*.png` (0 = other, 1..150 the classes).
* Cityscapes `leftImg8bit_trainvaltest.zip` + `gtFine_trainvaltest.zip`:
  `leftImg8bit/<split>/<city>/<name>_leftImg8bit.png` <-> `gtFine/<split>/<city>/<name>_gtFine_labelIds.png`
  (labelIds 0..33). The test split is skipped: its public annotations are placeholders, not ground truth.
* COCO-Stuff 164k `train2017.zip`, `val2017.zip`, `stuffthingmaps_trainval2017.zip`:
  `{train,val}2017/<id>.jpg` <-> `{train,val}2017/<id>.png` (0-based COCO ids 0..181, 255 unlabelled).
* COCO-Stuff 10k `cocostuff-10k-v1.1.zip`: `images/<name>.jpg` <-> `annotations/<name>.mat` (array `S`,
  1-based ids, 0 unlabelled); the splits are the names listed in `imageLists/{train,test}.txt`.

A split is prepared when the sources hold at least one of its images (preparing a subset, e.g. only the
validation archive, is legitimate); inside a prepared split every image needs its annotation and the reverse.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..label_sets import ADE20K, CITYSCAPES, COCO_STUFF, COCO_STUFF_10K, LabelSet
from .errors import DatasetPreparationError
from .sources import FileRef, SourceFiles

logger = logging.getLogger(__name__)

_ANY_PREFIX = r"(?:.*/)?"


@dataclass(frozen=True)
class Pair:
    """One row to write: its split, identifier values (in the layout's `id_columns` order) and two files."""

    split: str
    ids: tuple[str, ...]
    image: FileRef
    annotation: FileRef


@dataclass(frozen=True)
class DatasetLayout:
    """The file layout and label facts of one official release.

    `image_pattern` / `annotation_pattern` match relative paths and capture `key` (the identifier, the file
    stem without suffixes), `split` (the official split folder, absent where `list_pattern` gives the splits)
    and any other `id_columns` (e.g. `city`). `splits` maps official split names to output split names; a
    split mapped to None is skipped, for the reason in `skipped_reason`.
    """

    name: str
    preset: str
    label_set: LabelSet
    image_pattern: re.Pattern[str]
    annotation_pattern: re.Pattern[str]
    splits: Mapping[str, str | None]
    official_counts: Mapping[str, int]
    raw_values: frozenset[int]
    """Every value the official annotations may hold (classes, unlabelled and ids defined but unused)."""
    annotation_format: str = "png"
    """`png` (copied as is) or `mat` (MATLAB v5 file whose array `S` is the label map, written as PNG)."""
    id_columns: tuple[str, ...] = ("image_id",)
    list_pattern: re.Pattern[str] | None = None
    skipped_reason: str = ""

    def find_pairs(self, files: SourceFiles) -> dict[str, list[Pair]]:
        """`{output split: pairs sorted by identifier}` of every split found in the sources.

        Raises DatasetPreparationError naming the file for an image without its annotation (or the reverse),
        a file found twice, or sources that hold none of the dataset's files.
        """
        images: dict[tuple[str, str], tuple[FileRef, tuple[str, ...]]] = {}
        annotations: dict[tuple[str, str], tuple[FileRef, tuple[str, ...]]] = {}
        lists: dict[str, FileRef] = {}
        for source in range(len(files.paths)):
            found = 0
            for ref in files.files(source):
                for pattern, found_in in ((self.image_pattern, images), (self.annotation_pattern, annotations)):
                    match = pattern.fullmatch(ref.name)
                    if match is not None:
                        groups = match.groupdict()
                        key = (groups.get("split") or "", groups["key"])
                        ids = (groups["key"], *(groups[column] for column in self.id_columns[1:]))
                        if key in found_in:
                            raise DatasetPreparationError(
                                f"{files.describe(ref)} and {files.describe(found_in[key][0])} are the same file of "
                                f"{self.name}; pass each archive (or its extracted folder) once."
                            )
                        found_in[key] = (ref, ids)
                        found += 1
                        break
                else:
                    match = self.list_pattern.fullmatch(ref.name) if self.list_pattern else None
                    if match is not None:
                        lists[match["split"]] = ref
                        found += 1
            if not found:
                raise DatasetPreparationError(
                    f"--source {str(files.paths[source])!r} holds no {self.name} files. {self.describe_sources()}"
                )
        if self.list_pattern is not None:
            return self._pairs_from_lists(files, images, annotations, lists)
        return self._pairs_from_folders(files, images, annotations)

    def describe_sources(self) -> str:
        """What the official sources of this dataset contain, for error messages."""
        return f"Expected the official layout: {_EXPECTED[self.name]}"

    def _pairs_from_folders(self, files: SourceFiles, images: dict, annotations: dict) -> dict[str, list[Pair]]:
        present = {split for split, _ in images}
        pairs: dict[str, list[Pair]] = {}
        for split in sorted(present | {split for split, _ in annotations}, key=list(self.splits).index):
            output = self.splits[split]
            if output is None:
                logger.warning("%s: split %r skipped: %s", self.name, split, self.skipped_reason)
                continue
            if split not in present:
                logger.warning(
                    "%s: annotations of split %r found but none of its images; split %r not written.",
                    self.name, split, output,
                )
                continue
            keys = sorted(key for key in images.keys() | annotations.keys() if key[0] == split)
            pairs[output] = [self._pair(files, output, key, images, annotations) for key in keys]
        if not pairs:
            raise DatasetPreparationError(f"The sources hold no {self.name} images. {self.describe_sources()}")
        return pairs

    def _pairs_from_lists(
        self, files: SourceFiles, images: dict, annotations: dict, lists: dict[str, FileRef]
    ) -> dict[str, list[Pair]]:
        for key in sorted(images.keys() ^ annotations.keys()):
            self._pair(files, "", key, images, annotations)  # raises, naming the unpaired file
        pairs: dict[str, list[Pair]] = {}
        for split, output in self.splits.items():
            if split not in lists:
                logger.warning(
                    "%s: no image list for split %r in the sources; split %r not written.", self.name, split, output
                )
                continue
            text = files.read(lists[split]).decode("utf-8")
            names = sorted({line.strip() for line in text.splitlines() if line.strip()})
            for name in names:
                if ("", name) not in images:
                    raise DatasetPreparationError(
                        f"{files.describe(lists[split])} lists {name!r}, but its image and annotation are not in the "
                        f"sources. {self.describe_sources()}"
                    )
            pairs[output] = [self._pair(files, output, ("", name), images, annotations) for name in names]
        if not pairs:
            raise DatasetPreparationError(f"The sources hold no {self.name} image lists. {self.describe_sources()}")
        return pairs

    def _pair(self, files: SourceFiles, split: str, key: tuple[str, str], images: dict, annotations: dict) -> Pair:
        if key not in annotations:
            raise DatasetPreparationError(
                f"{files.describe(images[key][0])} has no annotation in the sources (expected "
                f"{self.annotation_hint(key[1])}). {self.describe_sources()}"
            )
        if key not in images:
            raise DatasetPreparationError(
                f"{files.describe(annotations[key][0])} has no image in the sources (expected "
                f"{self.image_hint(key[1])}). {self.describe_sources()}"
            )
        image, ids = images[key]
        return Pair(split, ids, image, annotations[key][0])

    def image_hint(self, key: str) -> str:
        """The file name the official release gives the image of `key`."""
        return _FILE_NAMES[self.name][0].format(key=key)

    def annotation_hint(self, key: str) -> str:
        """The file name the official release gives the annotation of `key`."""
        return _FILE_NAMES[self.name][1].format(key=key)


_FILE_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "ade20k": ("{key}.jpg", "{key}.png"),
        "cityscapes": ("{key}_leftImg8bit.png", "{key}_gtFine_labelIds.png"),
        "coco-stuff": ("{key}.jpg", "{key}.png"),
        "coco-stuff-10k": ("images/{key}.jpg", "annotations/{key}.mat"),
    }
)

_EXPECTED: Mapping[str, str] = MappingProxyType(
    {
        "ade20k": "ADEChallengeData2016.zip with ADEChallengeData2016/images/{training,validation}/ADE_*.jpg and "
        "ADEChallengeData2016/annotations/{training,validation}/ADE_*.png.",
        "cityscapes": "leftImg8bit_trainvaltest.zip (leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png) and "
        "gtFine_trainvaltest.zip (gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png).",
        "coco-stuff": "train2017.zip / val2017.zip ({train,val}2017/<id>.jpg) and stuffthingmaps_trainval2017.zip "
        "({train,val}2017/<id>.png).",
        "coco-stuff-10k": "cocostuff-10k-v1.1.zip with images/<name>.jpg, annotations/<name>.mat and "
        "imageLists/{train,test}.txt.",
    }
)

LAYOUTS: Mapping[str, DatasetLayout] = MappingProxyType(
    {
        "ade20k": DatasetLayout(
            name="ade20k",
            preset="ade20k",
            label_set=ADE20K,
            image_pattern=re.compile(_ANY_PREFIX + r"images/(?P<split>training|validation)/(?P<key>[^/]+)\.jpg"),
            annotation_pattern=re.compile(
                _ANY_PREFIX + r"annotations/(?P<split>training|validation)/(?P<key>[^/]+)\.png"
            ),
            splits=MappingProxyType({"training": "train", "validation": "validation"}),
            official_counts=MappingProxyType({"train": 20_210, "validation": 2_000}),
            raw_values=frozenset(range(151)),
        ),
        "cityscapes": DatasetLayout(
            name="cityscapes",
            preset="cityscapes",
            label_set=CITYSCAPES,
            image_pattern=re.compile(
                _ANY_PREFIX + r"leftImg8bit/(?P<split>train|val|test)/(?P<city>[^/]+)/(?P<key>[^/]+)_leftImg8bit\.png"
            ),
            annotation_pattern=re.compile(
                _ANY_PREFIX + r"gtFine/(?P<split>train|val|test)/(?P<city>[^/]+)/(?P<key>[^/]+)_gtFine_labelIds\.png"
            ),
            splits=MappingProxyType({"train": "train", "val": "validation", "test": None}),
            official_counts=MappingProxyType({"train": 2_975, "validation": 500}),
            raw_values=frozenset(range(34)),
            id_columns=("image_id", "city"),
            skipped_reason="the public test annotations are placeholders (scores come from the benchmark server).",
        ),
        "coco-stuff": DatasetLayout(
            name="coco-stuff",
            preset="coco-stuff",
            label_set=COCO_STUFF,
            image_pattern=re.compile(_ANY_PREFIX + r"(?P<split>train2017|val2017)/(?P<key>[^/]+)\.jpg"),
            annotation_pattern=re.compile(_ANY_PREFIX + r"(?P<split>train2017|val2017)/(?P<key>[^/]+)\.png"),
            splits=MappingProxyType({"train2017": "train", "val2017": "validation"}),
            official_counts=MappingProxyType({"train": 118_287, "validation": 5_000}),
            raw_values=frozenset(range(182)) | {255},
        ),
        "coco-stuff-10k": DatasetLayout(
            name="coco-stuff-10k",
            preset="coco-stuff-10k",
            label_set=COCO_STUFF_10K,
            image_pattern=re.compile(_ANY_PREFIX + r"images/(?P<key>[^/]+)\.jpg"),
            annotation_pattern=re.compile(_ANY_PREFIX + r"annotations/(?P<key>[^/]+)\.mat"),
            list_pattern=re.compile(_ANY_PREFIX + r"imageLists/(?P<split>train|test)\.txt"),
            # The release's test list is the evaluation split of the paper and of mmsegmentation.
            splits=MappingProxyType({"train": "train", "test": "validation"}),
            official_counts=MappingProxyType({"train": 9_000, "validation": 1_000}),
            raw_values=frozenset(range(183)),
            annotation_format="mat",
        ),
    }
)
"""`--dataset` name -> official layout."""
