"""Modes of the files lepton-ops writes for people (reports, models): what their umask says."""

from __future__ import annotations

import os


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: what ``open()`` would give a new file.

    Files made with ``tempfile.mkstemp`` (to be renamed into place atomically) start as
    0600; chmod them to this so that they end up as any other file the user writes.
    Secrets (the service token) keep their 0600.
    """
    current = os.umask(0o077)  # reading the umask means setting it: put it straight back
    os.umask(current)
    return mode & ~current
