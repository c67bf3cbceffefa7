"""The one exception type that becomes an error record (agent and harness alike)."""

from __future__ import annotations


class Fault(Exception):
    """A failure with a stable reason code (see ``record.REASONS``) and a one-line message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
