"""The one error type every data and model loader raises when something cannot be obtained."""

from __future__ import annotations


class DataUnavailableError(OSError):
    """A dataset or model could be read neither locally nor from the hub.

    The message names what was looked for and how to obtain it (a download command, a local
    folder flag, or the offline embedded default); ``python -m goat.train`` prints it on one line.
    """
