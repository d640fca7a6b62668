"""Lifetime boilerplate shared by the objects that own C handles or threads."""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T", bound="OwnsHandles")


class OwnsHandles:
    """Subclasses implement ``close()`` (idempotent); this adds ``with`` support
    and closing when the object is garbage-collected."""

    def close(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: module globals may be gone
            pass
