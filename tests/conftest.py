"""Shared pytest fixtures: makes tests/reference importable as ``reference``."""
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session")
def ref_cache():
    """Session-wide cache of ReferenceModel objects keyed by model path."""
    from reference.forward import ReferenceModel

    cache = {}

    def get(path, **kw):
        key = (str(path), tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = ReferenceModel(path, **kw)
        return cache[key]

    return get
