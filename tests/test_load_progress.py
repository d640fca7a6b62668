"""Model-load progress (bitnet_model_params.progress_callback, Model(progress=...)).

The loader reports the fraction of the file read when it reads the file
(use_mmap=False), in steps of about 1% but at least 1 MiB, then 1.0 once the
model is ready; a mapped file is not read at load time, so only the final
call comes. An exception in the callback cancels the load and propagates.
"""

from __future__ import annotations

import os

import pytest

import bitnet


def test_reading_reports_increasing_fractions_then_one() -> None:
    seen: list[float] = []
    with bitnet.Model(use_mmap=False, progress=seen.append):
        pass
    size_mib = os.path.getsize(bitnet.default_model_path()) / (1 << 20)
    assert len(seen) == int(size_mib) + 1  # one call per whole MiB read (the last one is the 1.0)
    assert seen == sorted(seen) and 0 < seen[0] < 1 and seen[-1] == 1.0


def test_a_mapped_file_reports_only_the_end() -> None:
    seen: list[float] = []
    with bitnet.Model(progress=seen.append):
        pass
    assert seen == [1.0]


def test_an_exception_in_the_callback_cancels_the_load_and_propagates() -> None:
    def cancel(fraction: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bitnet.Model(use_mmap=False, progress=cancel)
    with bitnet.Model(use_mmap=False) as m:  # nothing left half-loaded
        assert m.generate_tokens(m.tokenize("And"), 2)


def test_progress_true_draws_a_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with bitnet.Model(use_mmap=False, progress=True):
        pass
    assert "loading bitnet-english-i2_s.gguf" in capsys.readouterr().err


def test_progress_must_be_a_flag_or_a_callable() -> None:
    with pytest.raises(TypeError, match="progress must be"):
        bitnet.Model(progress="yes")  # type: ignore[arg-type]
