"""The compiled engine (cffi module ``bitnet._bitnet``) and error checking."""

from __future__ import annotations

from ._bitnet import ffi, lib  # noqa: F401  (re-exported)
from ._errors import BitNetError


def status_name(status: int) -> str:
    return ffi.string(lib.bitnet_status_str(status)).decode()


def last_error() -> str:
    """This thread's last error message from the engine."""
    return ffi.string(lib.bitnet_last_error()).decode("utf-8", errors="replace")


def check(status: int, message: str | None = None) -> None:
    """Raise BitNetError for a negative status, with the engine's message."""
    if status != 0:
        text = message if message is not None else last_error()
        raise BitNetError(text or status_name(status), status, status_name(status))


def c_string(raw: bytes | bytearray | memoryview) -> str:
    return bytes(raw).decode("utf-8", errors="replace")
