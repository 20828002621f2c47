"""The options that name a segmentation dataset and say how its labels are read, shared by training and
evaluation, so both commands accept the same flags with the same meaning."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers.hf_argparser import string_to_bool


class BooleanFlag(argparse.Action):
    """An optional boolean: `--flag` or `--flag true|false` sets it, `--no-flag` clears it, absent leaves None.

    `HfArgumentParser` gives a `bool | None` field a flag that needs a value; this action also takes the bare
    flag and its `--no-` form (`argparse.BooleanOptionalAction`'s spellings), so every spelling that training
    or evaluation ever accepted still works. Used as a field's `metadata={"action": BooleanFlag}`.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, type: Any = None, **kwargs: Any) -> None:
        negatives = [f"--no-{option[2:]}" for option in option_strings if option.startswith("--")]
        super().__init__([*option_strings, *negatives], dest, nargs="?", metavar="BOOL", **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        negative = bool(option_string and option_string.startswith("--no-"))
        if negative and values is not None:
            parser.error(f"{option_string} takes no value.")
        setattr(namespace, self.dest, not negative if values is None else string_to_bool(values))


@dataclass
class DatasetArguments:
    """Which dataset to read and how its label maps become the model's class ids."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset id, local folder in Hub layout (data/<split>-*.parquet, ...) or save_to_disk "
            "folder. Training defaults to the small synthetic dataset shipped with segret_hf, which also brings "
            "CPU-sized defaults (96-pixel crops, 150 steps, evaluation every 50, 2 prediction pictures); "
            "evaluation needs it."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Dataset configuration, if it has several."}
    )
    dataset_revision: str | None = field(
        default=None,
        metadata={
            "help": "Hub branch, tag or commit of the dataset, e.g. refs/convert/parquet (the Hub's parquet export "
            "of datasets that are loading scripts, such as scene_parse_150)."
        },
    )
    dataset_preset: str | None = field(
        default=None,
        metadata={
            "help": "ade20k, cityscapes, coco-stuff or coco-stuff-10k: apply this dataset's facts (columns, label "
            "mapping, classes to check, test resize); training also follows the configuration released for it and "
            "the model variant (optimiser, schedule, batch, iterations, crop, scales)."
        },
    )
    image_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the images (default: the preset's or a common name)."}
    )
    label_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the label maps (default: the preset's or a common name)."}
    )
    do_reduce_labels: bool | None = field(
        default=None,
        metadata={
            "help": "Map label 0 to 255 (ignored) and every other label l to l - 1 (ADE20K-style); --no-"
            "do_reduce_labels turns a preset's reduction off. Default: the preset's choice, else off.",
            "action": BooleanFlag,
        },
    )
    labels_are_train_ids: bool = field(
        default=False,
        metadata={
            "help": "The label maps already hold train ids (e.g. Cityscapes *_labelTrainIds.png): skip the "
            "preset's raw-id lookup table or reduction."
        },
    )
