"""Load a segmentation dataset split and find its image / label columns, failing early and clearly.

Shared by training and evaluation so that both accept the same three kinds of `--dataset_name`:

* a Hub dataset id (`scene_parse_150`, `user/my-ade-copy`), loaded with `datasets.load_dataset`;
* a local folder in the Hub layout (`data/validation-00000-of-00001.parquet`, optional `id2label.json`),
  also loaded with `datasets.load_dataset`;
* a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`, loaded with `load_from_disk`.

A wrong split or column name otherwise surfaces as a `KeyError` deep inside preprocessing; here it is a
`ValueError` that names what was asked for and lists what exists. A dataset that is only a loading script
(`scene_parse_150`, which `datasets` no longer runs) gets a :class:`DatasetScriptError` naming both ways out.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import datasets

from .presets import DatasetPreset

IMAGE_COLUMN_CANDIDATES: tuple[str, ...] = ("image", "img", "pixel_values")
"""Image column names tried, in order, when neither the user nor a preset names one."""

LABEL_COLUMN_CANDIDATES: tuple[str, ...] = (
    "annotation",
    "label",
    "semantic_segmentation",
    "segmentation",
    "mask",
    "labels",
)
"""Label-map column names tried, in order, when neither the user nor a preset names one."""

SCRIPT_DATASET_MESSAGE = "Dataset scripts are no longer supported"
"""Start of the RuntimeError `datasets` (4.0 and later) raises for a dataset that is a loading script."""

_NOT_DATA_SUFFIXES = frozenset({".md", ".json", ".txt"})
"""Files of a dataset folder that describe it rather than hold its rows."""


class DatasetScriptError(ValueError):
    """The dataset is a loading script, which `datasets` no longer runs; the message names the ways out."""

    def __init__(self, name_or_path: str, found: str) -> None:
        super().__init__(
            f"Dataset {name_or_path!r} is a loading script ({found}), which datasets>=4 no longer runs. Either load "
            "the Hub's parquet export of it with --dataset_revision refs/convert/parquet (Hub datasets only), or "
            "build a parquet dataset from the official archive with scripts/prepare_dataset.py (ADE20K, "
            "Cityscapes, COCO-Stuff; see the README's Datasets section) and pass that folder as --dataset_name."
        )


def _is_saved_to_disk(path: Path) -> bool:
    """Whether `path` is a `save_to_disk` folder (a DatasetDict or a single Dataset)."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _refuse_script_folder(path: Path) -> None:
    """Raise DatasetScriptError for a local folder whose only data files are Python loading scripts."""
    if not any(path.glob("*.py")):  # a loading script sits at the top of its folder
        return
    files = [
        file
        for file in path.rglob("*")
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
    ]
    data_files = [file for file in files if file.suffix.lower() not in _NOT_DATA_SUFFIXES]
    scripts = [file.name for file in data_files if file.suffix == ".py"]
    if scripts and len(scripts) == len(data_files):
        raise DatasetScriptError(str(path), ", ".join(sorted(scripts)))


def load_split(
    name_or_path: str,
    split: str,
    config_name: str | None = None,
    revision: str | None = None,
    streaming: bool = False,
) -> datasets.Dataset | datasets.IterableDataset:
    """One split of a Hub dataset, a Hub-layout folder or a `save_to_disk` folder.

    `revision` (a Hub branch, tag or commit, e.g. `refs/convert/parquet`) is passed to `load_dataset`.
    With `streaming`, Hub ids and Hub-layout folders are read file by file as an IterableDataset without
    being copied into the datasets cache; a `save_to_disk` folder is already memory-mapped and is iterated.

    Raises:
        ValueError: the split does not exist (the message lists the splits that do), or has no rows.
        DatasetScriptError: the dataset is only a loading script.
        FileNotFoundError: `name_or_path` is neither a readable folder nor a reachable Hub dataset.
    """
    path = Path(name_or_path)
    if path.is_dir() and _is_saved_to_disk(path):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(
                    f"Unknown split {split!r} for dataset {name_or_path!r}; available splits: {list(loaded)}."
                )
            loaded = loaded[split]
        # A single saved Dataset has no split names; it is whatever split it was saved from.
        return loaded.to_iterable_dataset() if streaming else loaded
    if path.is_dir():
        _refuse_script_folder(path)
    try:
        return datasets.load_dataset(name_or_path, config_name, split=split, revision=revision, streaming=streaming)
    except RuntimeError as error:
        if SCRIPT_DATASET_MESSAGE in str(error):
            raise DatasetScriptError(name_or_path, str(error).rsplit("found ", 1)[-1]) from error
        raise
    except ValueError as error:
        if "Unknown split" in str(error) or "Bad split" in str(error):
            raise ValueError(f"Unknown split {split!r} for dataset {name_or_path!r}: {error}") from error
        if "corresponds to no data" in str(error):  # the split's files exist but hold no rows
            raise ValueError(
                f"Split {split!r} of dataset {name_or_path!r} is empty: its data files hold no rows."
            ) from error
        raise
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Could not load dataset {name_or_path!r}: it is not a local folder with data files or a "
            "`save_to_disk` folder, and not a Hub dataset reachable from here (set HF_HUB_OFFLINE=1 to use "
            f"the local cache only). Original error: {error}"
        ) from error


def _pick_column(kind: str, explicit: str | None, candidates: Iterable[str], available: list[str]) -> str:
    """The explicit column if it exists, else the first candidate present; a ValueError otherwise."""
    if explicit is not None:
        if explicit not in available:
            raise ValueError(f"Unknown {kind} column {explicit!r}; the dataset has columns {available}.")
        return explicit
    candidates = list(candidates)
    match = next((name for name in candidates if name in available), None)
    if match is None:
        raise ValueError(
            f"Found no {kind} column: tried {candidates}, the dataset has columns {available}. "
            f"Name it with --{kind}_column_name."
        )
    return match


def resolve_columns(
    column_names: Iterable[str],
    image_column: str | None = None,
    label_column: str | None = None,
    preset: DatasetPreset | None = None,
) -> tuple[str, str]:
    """`(image_column, label_column)`: the names given, else the preset's candidates, else common names."""
    available = list(column_names)
    image_candidates = preset.image_column_candidates if preset else IMAGE_COLUMN_CANDIDATES
    label_candidates = preset.label_column_candidates if preset else LABEL_COLUMN_CANDIDATES
    image = _pick_column("image", image_column, image_candidates, available)
    label = _pick_column("label", label_column, label_candidates, available)
    if image == label:
        raise ValueError(f"The image and label columns are both {image!r}; name them separately.")
    return image, label
