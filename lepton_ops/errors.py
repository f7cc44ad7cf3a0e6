"""The errors lepton-ops reports to its users, and the exit codes they map to."""

from __future__ import annotations


class LeptonError(Exception):
    """Base class: an error with a one-line message meant for the operator."""

    exit_code = 1


class BadInput(LeptonError):
    """The user asked for something that cannot be done as asked (exit code 2)."""

    exit_code = 2


class OperationFailed(LeptonError):
    """The request was valid but carrying it out failed (exit code 1).

    ``transient``: the other side was not there (it may be restarting), so the same
    request may succeed if tried again later.
    """

    exit_code = 1

    def __init__(self, message: str = "", *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
