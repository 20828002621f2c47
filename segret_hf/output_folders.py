"""Output folders that are written whole or not at all.

The converter and the dataset preparation both produce a folder that other tools load as a unit (a model,
a dataset). Writing it in place would leave a half folder behind after an interruption, which then loads as
if complete. Here the content goes to a hidden staging folder beside the destination and is renamed into
place only once complete; a previous folder is replaced only at that moment.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputFolderError(FileExistsError):
    """The destination holds something this run would mix with or overwrite without being asked to."""


def check_output_dir(output_dir: Path, overwrite: bool, overwrite_flag: str) -> None:
    """Refuse a destination that is a file, or a non-empty folder unless `overwrite` (named by `overwrite_flag`)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputFolderError(f"--output_dir {str(output_dir)!r} is a file; name a folder.")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise OutputFolderError(
            f"--output_dir {str(output_dir)!r} is not empty. Pass {overwrite_flag} to replace it, or choose another "
            "folder."
        )


@contextmanager
def staged_output_dir(output_dir: Path) -> Iterator[Path]:
    """A staging folder to write into; on success it replaces `output_dir`, on any exception it is removed."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.partial-"))
    try:
        yield staging
        _publish(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, output_dir: Path) -> None:
    """Move the complete `staging` folder to `output_dir`, retiring what was there only at that moment."""
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    retired = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.old-"))
    output_dir.rename(retired / output_dir.name)
    staging.rename(output_dir)
    shutil.rmtree(retired)
