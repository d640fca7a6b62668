"""The few lines cffi needs: all metadata lives in pyproject.toml.

The version comes from BITNET_VERSION_STRING in bindings_c/include/bitnet.h,
the single source of the version for C and Python."""

import re
from pathlib import Path

from setuptools import setup

HEADER = Path(__file__).resolve().parent / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text(encoding="utf-8")).group(1)

setup(
    version=VERSION,
    cffi_modules=["bindings_py/bitnet/_ffi_build.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
