"""The parser `segret-evaluate` and `segret-convert` build from their argument dataclasses, one `--help` layout."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from transformers import HfArgumentParser


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """`--help` that keeps the description's usage examples as written and shows every default."""


def command_parser(dataclass_types: type | Iterable[type], description: str | None) -> HfArgumentParser:
    """An `HfArgumentParser` of `dataclass_types`, its help led by `description` (a module docstring)."""
    return HfArgumentParser(dataclass_types, description=description, formatter_class=HelpFormatter)
