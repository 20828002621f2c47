"""Writing a run's results so that a full disk is named as such and a killed run never looks finished.

* A checkpoint or final save that runs out of space fails inside a writer (`torch.save`'s zip writer says
  `[enforce fail at inline_container.cc] unexpected pos`, safetensors an `IoError`) without the words "no
  space". :func:`reporting_full_disk` turns such failures into an `OSError(ENOSPC)` that names the path, the
  free space and the way back (resume from the last complete checkpoint).
* The final model is saved into a hidden staging folder inside the output directory and its files are moved
  into place at the very end, `config.json` last. A run killed before that leaves a directory without
  `config.json`, which `from_pretrained` refuses, instead of weights that load as if the run had finished.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

STAGING_NAME = ".final-model"
LAST_FILE = "config.json"
"""Published last: without it a folder does not load as a model."""
_OUT_OF_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_OUT_OF_SPACE_WORDS = ("no space left", "storagefull", "os error 28", "quota exceeded", "unexpected pos")
"""How writers that do not raise OSError(ENOSPC) report a full disk: the Rust I/O error in safetensors, and
PyTorch's zip writer, whose "unexpected pos" means that fewer bytes were written than asked for."""


def _free_space(path: Path) -> str:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return "free space unknown"
    return f"{free / 2**20:.0f} MiB free there now"


def is_out_of_space(error: BaseException) -> bool:
    """Whether `error` is a writer's report of a full disk or an exhausted quota."""
    if isinstance(error, OSError) and error.errno in _OUT_OF_SPACE_ERRNOS:
        return True
    if isinstance(error, (OSError, RuntimeError, SafetensorError)):
        message = str(error).lower()
        return any(words in message for words in _OUT_OF_SPACE_WORDS)
    return False


@contextmanager
def reporting_full_disk(path: Path, what: str) -> Iterator[None]:
    """Re-raise an out-of-space failure inside the block as `OSError(ENOSPC)` naming `what` and `path`."""
    try:
        yield
    except (OSError, RuntimeError, SafetensorError) as error:
        if not is_out_of_space(error):
            raise
        raise OSError(
            errno.ENOSPC,
            f"No space left on the device while writing {what} to {str(path)!r} ({_free_space(path)}; the writer "
            f"said: {str(error).strip().splitlines()[0]}). Free some space, or keep fewer checkpoints with "
            "--save_total_limit, then continue from the last complete checkpoint with --resume_from_checkpoint.",
        ) from error


def staging_dir(output_dir: Path) -> Path:
    """An empty hidden folder in `output_dir` for the final model (a leftover from a killed run is cleared)."""
    staging = output_dir / STAGING_NAME
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def publish(staging: Path, output_dir: Path) -> None:
    """Move every file of `staging` into `output_dir` (`config.json` last), then remove `staging`.

    Each move is a rename within one filesystem, so no file is ever seen half-written.
    """
    entries = sorted(staging.iterdir(), key=lambda entry: entry.name == LAST_FILE)
    for entry in entries:
        target = output_dir / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    staging.rmdir()
