"""Errors raised by the bitnet package."""

from __future__ import annotations


class BitNetError(RuntimeError):
    """A failure reported by the C engine; ``str(e)`` is the engine's message.

    ``status`` is the engine's negative status code (see ``bitnet.h``) and
    ``status_name`` its English name ("malformed file", "context full", ...).
    """

    def __init__(self, message: str, status: int = -9, status_name: str = "internal error") -> None:
        super().__init__(message)
        self.status = status
        self.status_name = status_name
