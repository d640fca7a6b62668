"""The embedded default model (issue 10) against the PyTorch model it was trained as.

tests/data/default_model/ holds what tools/train_default_model/export_reference.py
recorded from the trained PyTorch model (quantization-aware: ternary weights,
int8 activations, the arithmetic the engine runs on I2_S): greedy
continuations with the top-2 logit margin at each step, the logits after each
prompt (reference.npy) and the held-out perplexity by llama.cpp's method.
held_out_sample.txt.xz is every 7th chunk of the held-out split of the corpus
(every 20th chunk of each source of tools/train_default_model/corpus.py's
"english" corpus: the King James Bible, State of the Union addresses,
Shakespeare, Austen, the CIA World Factbook, Moby-Dick, Alice), 51k tokens.
"""

from __future__ import annotations

import json
import lzma
import shlex
from pathlib import Path

import numpy as np
import pytest

import bitnet
from bitnet.cli import main as cli_main

DATA = Path(__file__).parent / "data" / "default_model"
REF = json.loads((DATA / "reference.json").read_text())
REF_LOGITS = np.load(DATA / "reference.npy")

# The engine and PyTorch differ only by float rounding (summation order, the
# float16 KV cache and output matrix), so a greedy step may flip only where the
# two best logits are within a rounding error of each other.
NEAR_TIE = 0.05


@pytest.fixture(scope="module")
def model():
    with bitnet.Model() as m:
        yield m


def test_model_is_found_without_a_path(model):
    assert Path(model.path) == bitnet.default_model_path()
    assert model.arch == "bitnet-b1.58"
    assert model.n_ctx == REF["n_ctx"] * 2  # trained with 256-token windows, positions up to 512


def test_tokenizer_gives_the_training_tokenizer_ids(model):
    for case in REF["cases"]:
        assert model.tokenize(case["prompt"]) == case["prompt_ids"], case["prompt"]


def test_logits_after_each_prompt_match_pytorch(model):
    # Both sides quantize activations to int8 per token; a value within a float
    # rounding of a .5 boundary rounds one way in PyTorch and the other here, a
    # step of max|x|/127 that the following layers carry. Seen when the file
    # was made: max |diff| 0.014-0.052 of the logits' std, mean 0.003-0.012,
    # cosine >= 0.99998 (f16 or f32 KV cache alike). A wrong rope, norm or
    # scale gives differences of the order of the std itself.
    for case, ref in zip(REF["cases"], REF_LOGITS):
        ours = model.logits(case["prompt_ids"])[-1]
        diff = np.abs(ours - ref)
        cosine = float(ours @ ref / np.linalg.norm(ours) / np.linalg.norm(ref))
        assert diff.max() / ref.std() < 0.15, (case["prompt"], diff.max() / ref.std())
        assert diff.mean() / ref.std() < 0.03, (case["prompt"], diff.mean() / ref.std())
        assert cosine > 0.9999, (case["prompt"], cosine)
        assert int(ours.argmax()) == int(ref.argmax()) or ref.max() - np.sort(ref)[-2] < NEAR_TIE


def test_greedy_continuations_match_pytorch_up_to_a_near_tie(model):
    compared = 0
    for case in REF["cases"]:
        ours = model.generate_tokens(case["prompt_ids"], len(case["greedy_ids"]), ignore_eos=True)
        for i, (a, b, margin) in enumerate(zip(ours, case["greedy_ids"], case["margins"])):
            if margin < NEAR_TIE:
                break  # from here on either continuation is right
            assert a == b, f"{case['prompt']!r}: token {i} is {a}, PyTorch gives {b} (margin {margin})"
            compared += 1
    assert compared >= 40, "too few tokens compared for this test to mean much"


def test_held_out_perplexity_agrees_with_pytorch_within_2_percent(model):
    text = lzma.decompress((DATA / "held_out_sample.txt.xz").read_bytes()).decode("utf-8")
    ppl = model.perplexity(text, n_ctx=REF["n_ctx"])
    assert abs(ppl / REF["sample_ppl"] - 1) < 0.02, (ppl, REF["sample_ppl"])


def test_bitnet_run_uses_the_default_model(model, capsys):
    first = REF["cases"][0]
    sure = next((i for i, m in enumerate(first["margins"]) if m < NEAR_TIE), len(first["margins"]))
    n = min(12, sure)
    assert n >= 4
    assert cli_main(["run", first["prompt"], "-n", str(n), "--temperature", "0", "--ignore-eos", "-q"]) == 0
    assert capsys.readouterr().out == model.detokenize(first["greedy_ids"][:n]) + "\n"


def test_default_model_env_var_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("BITNET_DEFAULT_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="BITNET_DEFAULT_MODEL"):
        bitnet.Model()


def test_readme_first_command_prints_what_the_readme_shows(capsys):
    """The README's first command and the text it says comes out stay in step."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if "bitnet run" in line and "pip install ." in line)
    args = command.split(".venv/bin/bitnet ", 1)[1]
    block = readme.split(command, 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0]
    expected_text = block.splitlines()[0]
    assert cli_main([*shlex.split(args), "-q"]) == 0
    assert capsys.readouterr().out == expected_text + "\n"
