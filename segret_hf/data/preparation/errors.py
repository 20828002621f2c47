"""The one error type of dataset preparation, so the command line can print it without a traceback."""

from __future__ import annotations


class DatasetPreparationError(ValueError):
    """The sources, their contents or the options cannot make the dataset; the message names the file and the fix."""
