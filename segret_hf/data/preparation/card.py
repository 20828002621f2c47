"""The dataset card (README.md) of a prepared dataset.

The card's YAML header tells the Hub and `datasets.load_dataset` where each split's shards are (`configs`)
and what the columns are (`dataset_info`); its text says where the data came from, under which terms, how it
is cited, what the stored label values mean and which `--dataset_preset` flags train on it. The dataset's
`id2label.json` (`segret_hf.data.label_maps.write_id2label_file`) always lists the train ids a model predicts
(it is what training and evaluation compare a model's classes with), whatever the annotations store; the card
says which values they hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import yaml

from .layouts import DatasetLayout
from .shards import SplitSummary


@dataclass(frozen=True)
class DatasetFacts:
    """What the card says about the original dataset."""

    title: str
    homepage: str
    downloads: str
    license_id: str
    """The Hub's licence identifier for the YAML header (`other` needs `license_link`)."""
    license_text: str
    citation: str
    raw_values: str
    """What the official annotation values mean."""
    license_link: str = ""


_COCO_STUFF_LICENSE = (
    "The COCO and COCO-Stuff annotations are licensed under Creative Commons Attribution 4.0; the images come from "
    "Flickr and are subject to the Flickr terms of use."
)
_COCO_STUFF_CITATION = """@inproceedings{caesar2018cocostuff,
  title     = {COCO-Stuff: Thing and Stuff Classes in Context},
  author    = {Caesar, Holger and Uijlings, Jasper and Ferrari, Vittorio},
  booktitle = {CVPR},
  year      = {2018}
}"""

DATASET_FACTS: Mapping[str, DatasetFacts] = MappingProxyType(
    {
        "ade20k": DatasetFacts(
            title="ADE20K (MIT Scene Parsing Benchmark, 150 classes)",
            homepage="http://sceneparsing.csail.mit.edu/",
            downloads="`ADEChallengeData2016.zip` from the MIT Scene Parsing Benchmark "
            "(http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip).",
            license_id="bsd-3-clause",
            license_text="The annotations are released by MIT CSAIL under the BSD 3-Clause licence; the images "
            "come from the SUN and Places databases and remain subject to their owners' terms. See the "
            "benchmark's page for the full terms of use.",
            citation="""@inproceedings{zhou2017scene,
  title     = {Scene Parsing through ADE20K Dataset},
  author    = {Zhou, Bolei and Zhao, Hang and Puig, Xavier and Fidler, Sanja and Barriuso, Adela and
               Torralba, Antonio},
  booktitle = {CVPR},
  year      = {2017}
}
@article{zhou2019semantic,
  title   = {Semantic Understanding of Scenes through the ADE20K Dataset},
  author  = {Zhou, Bolei and Zhao, Hang and Puig, Xavier and Xiao, Tete and Fidler, Sanja and Barriuso, Adela and
             Torralba, Antonio},
  journal = {International Journal of Computer Vision},
  year    = {2019}
}""",
            raw_values="0 = other (not a class), 1..150 = the 150 classes",
        ),
        "cityscapes": DatasetFacts(
            title="Cityscapes (gtFine, 19 training classes)",
            homepage="https://www.cityscapes-dataset.com/",
            downloads="`leftImg8bit_trainvaltest.zip` and `gtFine_trainvaltest.zip` from "
            "https://www.cityscapes-dataset.com/downloads/ (registration required).",
            license_id="other",
            license_text="The Cityscapes licence allows non-commercial use (research, teaching, publications, "
            "personal experimentation) and forbids redistributing the data without the authors' permission: "
            "keep copies of this dataset private (`--private` when pushing to the Hub). Read the full terms on "
            "the Cityscapes website before use.",
            citation="""@inproceedings{cordts2016cityscapes,
  title     = {The Cityscapes Dataset for Semantic Urban Scene Understanding},
  author    = {Cordts, Marius and Omran, Mohamed and Ramos, Sebastian and Rehfeld, Timo and Enzweiler, Markus and
               Benenson, Rodrigo and Franke, Uwe and Roth, Stefan and Schiele, Bernt},
  booktitle = {CVPR},
  year      = {2016}
}""",
            raw_values="the 34 labelIds 0..33 of cityscapesScripts' labels.py (`*_gtFine_labelIds.png`)",
            license_link="https://www.cityscapes-dataset.com/license/",
        ),
        "coco-stuff": DatasetFacts(
            title="COCO-Stuff 164k (171 classes)",
            homepage="https://github.com/nightrome/cocostuff",
            downloads="`train2017.zip` and `val2017.zip` from https://cocodataset.org/#download "
            "(http://images.cocodataset.org/zips/) and `stuffthingmaps_trainval2017.zip` from the COCO-Stuff "
            "repository (http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/).",
            license_id="cc-by-4.0",
            license_text=_COCO_STUFF_LICENSE,
            citation=_COCO_STUFF_CITATION
            + """
@inproceedings{lin2014coco,
  title     = {Microsoft COCO: Common Objects in Context},
  author    = {Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and Hays, James and Perona, Pietro and
               Ramanan, Deva and Doll{\\'a}r, Piotr and Zitnick, C. Lawrence},
  booktitle = {ECCV},
  year      = {2014}
}""",
            raw_values="0-based COCO ids 0..181 (11 of them defined but never used), 255 = unlabelled",
        ),
        "coco-stuff-10k": DatasetFacts(
            title="COCO-Stuff 10k (v1.1, 171 classes)",
            homepage="https://github.com/nightrome/cocostuff10k",
            downloads="`cocostuff-10k-v1.1.zip` from the COCO-Stuff repository "
            "(http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/cocostuff-10k-v1.1.zip).",
            license_id="cc-by-4.0",
            license_text=_COCO_STUFF_LICENSE,
            citation=_COCO_STUFF_CITATION,
            raw_values="1-based COCO ids 1..182 as in the `S` arrays of the `.mat` files, 0 = unlabelled",
        ),
    }
)
"""`--dataset` name -> facts for its card."""


def training_flags(layout: DatasetLayout, train_ids: bool) -> str:
    """The label flags that train on a prepared dataset: the preset, plus `--labels_are_train_ids`."""
    return f"--dataset_preset {layout.preset}" + (" --labels_are_train_ids" if train_ids else "")


def card_text(
    layout: DatasetLayout,
    summaries: Sequence[SplitSummary],
    train_ids: bool,
    dataset_name: str,
) -> str:
    """The card's markdown for a dataset whose splits `summaries` describe; `dataset_name` is what to load."""
    facts = DATASET_FACTS[layout.name]
    licence = {"license": facts.license_id}
    if facts.license_link:
        licence.update(license_name=f"{layout.name}-license", license_link=facts.license_link)
    header = {
        **licence,
        "pretty_name": facts.title,
        "task_categories": ["image-segmentation"],
        "task_ids": ["semantic-segmentation"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": split.name, "path": f"data/{split.name}-*"} for split in summaries],
            }
        ],
        "dataset_info": {
            "features": [
                {"name": "image", "dtype": "image"},
                {"name": "annotation", "dtype": "image"},
                *({"name": column, "dtype": "string"} for column in layout.id_columns),
            ],
            "splits": [
                {"name": split.name, "num_bytes": split.num_bytes, "num_examples": split.num_rows}
                for split in summaries
            ],
            "download_size": sum(path.stat().st_size for split in summaries for path in split.files),
            "dataset_size": sum(split.num_bytes for split in summaries),
        },
    }
    if train_ids:
        values = (
            f"**train ids**: 0..{layout.label_set.num_labels - 1} are the classes of `id2label.json`, 255 is "
            f"ignored (converted from the official values: {facts.raw_values})"
        )
    else:
        values = f"the **official raw values**: {facts.raw_values}"
    counts = ", ".join(f"{split.name}: {split.num_rows:,} rows" for split in summaries)
    official = ", ".join(f"{name}: {count:,}" for name, count in layout.official_counts.items())
    city = "\n- `city`: the city the image was taken in" if "city" in layout.id_columns else ""
    skipped = [split for split, output in layout.splits.items() if output is None]
    skipped_note = "".join(f"\n\nThe {split} split is not included: {layout.skipped_reason}" for split in skipped)
    flags = training_flags(layout, train_ids)
    return f"""---
{yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip()}
---

# {facts.title}

{facts.title} in the Hugging Face parquet layout, built from the official release with segret-hf's
`scripts/prepare_dataset.py --dataset {layout.name}`. Homepage: {facts.homepage}

## Source

{facts.downloads} Images are stored byte for byte as released.

## Contents

{counts} (the official release has {official}).{skipped_note}

- `image`: the photograph, as released
- `annotation`: a single-channel PNG label map of the same size
- `image_id`: the file name stem in the release{city}

The annotations hold {values}. `id2label.json` names the {layout.label_set.num_labels} classes a model
predicts, by train id.

## Training and evaluating SegRet on it

```bash
python scripts/train.py --dataset_name {dataset_name} {flags} \\
    --model_variant tiny --output_dir segret-tiny-{layout.name}
python scripts/evaluate.py --model segret-tiny-{layout.name} --dataset_name {dataset_name} {flags} --split validation
```

## Licence

{facts.license_text}

## Citation

```bibtex
{facts.citation}
```
"""
