"""How every command reports an expected failure: one `error:` line on stderr and a non-zero exit status.

Bad input (a flag, a file, a dataset, a checkpoint) is a ValueError or OSError whose message already names
what is wrong and what to do, so the commands print it without a traceback; a traceback means a bug.
"""

from __future__ import annotations

import sys


def report_error(message: object, status: int) -> int:
    """Print `error: <message>` (an exception's message, or a text) on stderr and return `status`, the command's
    exit status."""
    print(f"error: {message}", file=sys.stderr)
    return status
