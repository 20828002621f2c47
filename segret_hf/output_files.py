"""Checks of an output file's path before the work whose result it will hold.

An evaluation or an inference can run for minutes or hours; finding out only when writing the result that
the path names a folder, lies under a file, cannot be written or has an extension no writer knows loses all
of it. The scripts call these checks right after parsing their arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

import PIL.Image


class OutputPathError(ValueError):
    """An output path that cannot receive the result; the message names the flag, the path and the fix."""


def _existing_ancestor(path: Path) -> Path:
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    return ancestor


def check_output_file(path: str | Path, flag: str) -> Path:
    """`path` as a Path, after checking that a file can be written there (missing folders are created later).

    Raises OutputPathError when `path` is a folder, when a file stands where a folder is needed, or when the
    file or the folder that would hold it is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{flag} {str(path)!r} is a folder; name a file in it, e.g. {str(path / 'out')!r}.")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise OutputPathError(f"{flag} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder.")
    target = path if path.exists() else ancestor
    if not os.access(target, os.W_OK):
        raise OutputPathError(f"{flag} {str(path)!r} cannot be written: no write permission on {str(target)!r}.")
    return path


def image_format(path: str | Path, flag: str) -> str:
    """The PIL format the extension of `path` names (`.png` -> `PNG`), or an OutputPathError listing a few."""
    PIL.Image.init()
    suffix = Path(path).suffix.lower()
    name = PIL.Image.registered_extensions().get(suffix)
    if name is None or name not in PIL.Image.SAVE:
        raise OutputPathError(
            f"{flag} {str(path)!r}: {'no' if not suffix else 'unknown'} image file extension {suffix!r}; "
            "end the name with .png, .jpg or .webp."
        )
    return name
