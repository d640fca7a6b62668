"""Bad input through the Python API: every failure is a clear exception, never a crash.

The C-level matrix (truncation at every byte, hostile counts and offsets,
random flips under AddressSanitizer) is tests/c/test_gguf_hostile.c; this file
checks that those errors reach Python users as the right exception types with
the engine's message, and that misuse of the Python objects is caught.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

bitnet = pytest.importorskip("bitnet")

from reference import gguf_io as G  # noqa: E402
from reference import model_factory  # noqa: E402


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad_input") / "good.gguf"
    model_factory.build(family="b158", wtype="F32").write(path)
    return path


def write_variant(tmp_path: Path, name: str, mutate) -> Path:
    g = model_factory.build(family="b158", wtype="F32")
    mutate(g)
    path = tmp_path / name
    g.write(path)
    return path


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        bitnet.Model(tmp_path / "nope.gguf")


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(bitnet.BitNetError, match="not a regular file"):
        bitnet.Model(tmp_path)


@pytest.mark.parametrize("use_mmap", [True, False])
@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.5, 0.999])
def test_truncated_file(tmp_path: Path, good_file: Path, fraction: float, use_mmap: bool) -> None:
    data = good_file.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(bitnet.BitNetError) as info:
        bitnet.Model(cut, use_mmap=use_mmap)
    assert str(cut) in str(info.value)
    assert info.value.status_name == "malformed file"
    assert any(word in str(info.value) for word in ("truncated", "past the end", "bad magic"))


def test_unknown_architecture(tmp_path: Path) -> None:
    def mutate(g: G.GGUFFile) -> None:
        g.kv["general.architecture"] = G.kv_str("mamba-9")

    with pytest.raises(bitnet.BitNetError, match="unknown architecture 'mamba-9'") as info:
        bitnet.Model(write_variant(tmp_path, "arch.gguf", mutate))
    assert info.value.status_name == "unsupported"


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    def mutate(g: G.GGUFFile) -> None:
        g.tensors = [t for t in g.tensors if t.name != "blk.1.ffn_down.weight"]

    with pytest.raises(bitnet.BitNetError, match=r"required tensor blk\.1\.ffn_down\.weight is missing"):
        bitnet.Model(write_variant(tmp_path, "missing.gguf", mutate))


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    def mutate(g: G.GGUFFile) -> None:
        t = g.tensor("blk.0.ffn_sub_norm.weight")
        t.shape = (t.shape[0] // 2,)
        t.data = t.data[: len(t.data) // 2]

    with pytest.raises(bitnet.BitNetError, match=r"blk\.0\.ffn_sub_norm\.weight has shape \[256\], expected \[512\]"):
        bitnet.Model(write_variant(tmp_path, "shape.gguf", mutate))


def test_missing_hyperparameter_is_named(tmp_path: Path) -> None:
    def mutate(g: G.GGUFFile) -> None:
        del g.kv["bitnet-b1.58.block_count"]

    with pytest.raises(bitnet.BitNetError, match="'bitnet-b1.58.block_count' is missing"):
        bitnet.Model(write_variant(tmp_path, "hparam.gguf", mutate))


def test_bad_constructor_arguments(good_file: Path) -> None:
    with pytest.raises(ValueError):
        bitnet.Model(good_file, n_ctx=0)
    with pytest.raises(ValueError):
        bitnet.Model(good_file, n_threads=-2)
    with pytest.raises(ValueError):
        bitnet.Model(good_file, kv_type="q4")


def test_a_context_larger_than_memory_is_refused_before_allocating() -> None:
    """2^31 - 1 tokens of KV cache for the default model: 6 TiB. calloc would
    succeed lazily on Linux and the OOM killer end the process later; the
    engine compares with physical memory (or the cgroup limit) first."""
    from bitnet.default_model import default_model_path

    start = time.monotonic()
    with pytest.raises(bitnet.BitNetError, match=r"needs [\d.]+ GiB, more than the [\d.]+ GiB of memory") as info:
        bitnet.Model(default_model_path(), n_ctx=2**31 - 1)
    assert info.value.status_name == "out of memory"
    assert "at most about" in str(info.value)
    assert time.monotonic() - start < 5


def test_token_ids_out_of_range(good_file: Path) -> None:
    with bitnet.Model(good_file, n_ctx=32) as m:
        with pytest.raises(ValueError, match="out of range"):
            m.logits([1, m.n_vocab])
        with pytest.raises(ValueError, match="out of range"):
            m.generate_tokens([-1], 4)
        with pytest.raises(ValueError, match="empty"):
            m.generate_tokens([], 4)


def test_prompt_longer_than_context(good_file: Path) -> None:
    with bitnet.Model(good_file, n_ctx=16) as m:
        with pytest.raises(bitnet.BitNetError, match="do not fit") as info:
            m.logits(list(range(17)))
        assert info.value.status_name == "context full"
        # the model is still usable afterwards
        assert m.logits(list(range(16))).shape == (16, m.n_vocab)


def test_generation_stops_at_a_full_context(good_file: Path) -> None:
    with bitnet.Model(good_file, n_ctx=8) as m:
        out = m.generate_tokens([1, 2, 3], 100, ignore_eos=True)
        assert len(out) == 8 - 3 + 1  # the last sampled token needs no cache slot


def test_closed_model(good_file: Path) -> None:
    m = bitnet.Model(good_file)
    m.close()
    m.close()  # closing twice is fine
    with pytest.raises(bitnet.BitNetError, match="closed"):
        m.logits([1])
    assert "closed" in repr(m)


def test_threads_share_one_model(good_file: Path) -> None:
    """Many Python threads on one Model: the lock serialises its context; results are identical."""
    with bitnet.Model(good_file, n_ctx=64) as m:
        want = m.logits([5, 6, 7, 8])
        results: list[np.ndarray] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(5):
                    results.append(m.logits([5, 6, 7, 8]))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(results) == 20
        for r in results:
            np.testing.assert_array_equal(r, want)
