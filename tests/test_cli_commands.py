"""The ``bitnet`` commands run, chat, tokenize, inspect and perplexity, called
through ``bitnet.cli.main`` (output captured by pytest) and once as
``python -m bitnet`` in a subprocess. Models: the scripted model (known
greedy text) and the factory's tiny model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

bitnet = pytest.importorskip("bitnet")
from bitnet.cli import main  # noqa: E402

from reference import gguf_io as G  # noqa: E402
from reference import model_factory  # noqa: E402
from reference.scripted_model import ANSWER, STOP_PROMPT, STOP_TEXT, UTF8_PIECES, UTF8_PROMPT, demo_model  # noqa: E402

PKG_PARENT = str(Path(bitnet.__file__).resolve().parents[1])
GREEDY = ["--temperature", "0"]


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(demo_model(tmp_path_factory.mktemp("cli") / "scripted.gguf"))


@pytest.fixture(scope="module")
def bos_scripted(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(demo_model(tmp_path_factory.mktemp("cli") / "bos.gguf", add_bos=True))


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    return capsys.readouterr().err


# ---- run ----------------------------------------------------------------------------------


def test_run_streams_the_completion(scripted: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "run", scripted, UTF8_PROMPT, *GREEDY, "-n", "50")
    assert code == 0
    assert out == "".join(UTF8_PIECES) + "\n"
    assert "tokens/s" in err and "12 generated" in err and "finish: stop" in err


def test_run_options(scripted: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "run", scripted, STOP_PROMPT, *GREEDY, "--stop", " t313", "-q", "-t", "1")
    assert (code, out, err) == (0, " t311 t312\n", "")
    code, out, _ = run_main(capsys, "run", scripted, STOP_PROMPT, "-n", "2", "--seed", "3", "-q", "-c", "64")
    assert (code, out) == (0, " t311 t312\n")  # the script's margin outweighs temperature 0.8


def test_run_reads_the_prompt_from_stdin(scripted: str, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(STOP_PROMPT))
    assert run_main(capsys, "run", scripted, "-", *GREEDY, "-q")[:2] == (0, STOP_TEXT + "\n")


def test_missing_model_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.gguf")
    for args in (["run", missing, "hi"], ["chat", missing], ["tokenize", missing, "hi"], ["inspect", missing],
                 ["perplexity", missing, missing]):
        code, out, err = run_main(capsys, *args)
        assert code == 1, args
        assert err.startswith("bitnet: error:") and "nope.gguf" in err and "Traceback" not in err


def test_bad_usage_is_exit_2(scripted: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "PROMPT" in usage_error(capsys, "run", scripted)
    assert "must be >= 0" in usage_error(capsys, "run", scripted, "hi", "-n", "-3")
    assert "invalid choice" in usage_error(capsys, "run", scripted, "hi", "--kernel", "turbo")
    assert "invalid choice" in usage_error(capsys, "chat", scripted, "--chat-format", "vicuna")
    usage_error(capsys, "perplexity", scripted)


def test_python_dash_m_bitnet(scripted: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_PARENT, env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-m", "bitnet", "run", scripted, STOP_PROMPT, "--temperature", "0"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == STOP_TEXT + "\n" and "tokens/s" in r.stderr
    r = subprocess.run([sys.executable, "-m", "bitnet", "--help"], capture_output=True, text=True, env=env,
                       timeout=120)
    for command in ("run", "chat", "perplexity", "tokenize", "inspect"):
        assert command in r.stdout


# ---- chat ----------------------------------------------------------------------------------


class SpyChatStream:
    """Records the messages of each turn; optionally interrupts one answer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, interrupt_turn: int | None = None) -> None:
        self.turns: list[list[dict[str, str]]] = []
        real = bitnet.Model.chat_stream
        spy = self

        def chat_stream(model: bitnet.Model, messages, *args, **kwargs):  # type: ignore[no-untyped-def]
            spy.turns.append([dict(m) for m in messages])
            stream = real(model, messages, *args, **kwargs)
            if len(spy.turns) - 1 == interrupt_turn:
                return spy._interrupted(stream)
            return stream

        monkeypatch.setattr(bitnet.Model, "chat_stream", chat_stream)

    @staticmethod
    def _interrupted(stream):  # type: ignore[no-untyped-def]
        class Interrupted:
            def __enter__(self):  # type: ignore[no-untyped-def]
                return self

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                stream.close()

            def __iter__(self) -> Iterator[str]:
                yield next(stream)
                raise KeyboardInterrupt  # Ctrl-C in the middle of the answer

        return Interrupted()


def chat(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, model: str, stdin: str,
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return run_main(capsys, "chat", model, *GREEDY, *args)


def test_chat_keeps_the_conversation(scripted: str, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpyChatStream(monkeypatch)
    code, out, err = chat(capsys, monkeypatch, scripted, "Hi\n\nHow are you?\n", "--system", "Be brief.")
    assert code == 0  # end of input ends the chat
    assert out == f"{ANSWER}\n{ANSWER}\n"  # no prompt marker: stdin is not a terminal
    assert [len(t) for t in spy.turns] == [2, 4]
    assert spy.turns[1] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "How are you?"},
    ]


def test_chat_reset_and_exit(scripted: str, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpyChatStream(monkeypatch)
    code, out, err = chat(capsys, monkeypatch, scripted, "one\ntwo\n/reset\nthree\n/exit\nnever\n",
                          "--system", "S")
    assert code == 0
    assert out == f"{ANSWER}\n" * 3
    assert [[m["content"] for m in t] for t in spy.turns] == [["S", "one"], ["S", "one", ANSWER, "two"], ["S", "three"]]
    assert "[conversation reset]" in err


def test_ctrl_c_stops_only_the_answer(scripted: str, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpyChatStream(monkeypatch, interrupt_turn=0)
    code, out, err = chat(capsys, monkeypatch, scripted, "first\nsecond\n")
    assert code == 0
    assert out == f" t450\n{ANSWER}\n"  # the cut answer, then a whole one
    assert "[answer stopped]" in err
    assert spy.turns[1][1] == {"role": "assistant", "content": " t450"}  # what was shown stays


def test_chat_reports_a_full_context_and_goes_on(scripted: str, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = chat(capsys, monkeypatch, scripted, "word " * 80 + "\n/reset\nhi\n", "-c", "64")
    assert code == 0
    assert "no longer fits in the context (64 tokens)" in err
    assert out == f"{ANSWER}\n"


# ---- tokenize ------------------------------------------------------------------------------------


def test_tokenize_json_matches_the_tokenizer(bos_scripted: str, capsys: pytest.CaptureFixture[str]) -> None:
    tok = bitnet.Tokenizer(bos_scripted)
    code, out, _ = run_main(capsys, "tokenize", bos_scripted, "hé<|eot_id|>", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == tok.tokenize("hé<|eot_id|>", add_bos=True)
    assert rows[0] == {"id": tok.bos_id, "piece": "<s>", "bytes": b"<s>".hex()}
    pieces = b"".join(tok.token_to_piece(i) for i in ids_of(rows[1:]))
    assert b"".join(bytes.fromhex(r["bytes"]) for r in rows[1:]) == pieces
    assert {"piece": "\\xc3", "bytes": "c3"}.items() <= next(r for r in rows if r["bytes"] == "c3").items()
    code, out, _ = run_main(capsys, "tokenize", bos_scripted, "hé<|eot_id|>", "--json", "--no-bos", "--special")
    ids = [r["id"] for r in json.loads(out)]
    assert ids == tok.tokenize("hé<|eot_id|>", add_bos=False, special=True) and ids[-1] == 500


def ids_of(rows: list[dict]) -> list[int]:
    return [r["id"] for r in rows]


def test_tokenize_text_output(scripted: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "tokenize", scripted, "é")
    ids = bitnet.Tokenizer(scripted).tokenize("é")  # this GGUF adds no BOS
    lines = out.splitlines()
    assert code == 0 and [int(line.split()[0]) for line in lines] == ids
    assert [line.split(None, 1)[1] for line in lines[-2:]] == ["b'\\xc3'", "b'\\xa9'"]  # é in two byte tokens


# ---- inspect -------------------------------------------------------------------------------------


def test_inspect_json_lists_metadata_and_tensors(scripted: str, capsys: pytest.CaptureFixture[str]) -> None:
    want = G.read(scripted)  # the tests' own GGUF reader
    code, out, _ = run_main(capsys, "inspect", scripted, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["metadata"]["general.architecture"] == "llama"
    assert info["metadata_types"]["general.architecture"] == "str"
    assert info["metadata"]["tokenizer.ggml.tokens"]["length"] == 512
    assert info["metadata"]["tokenizer.ggml.tokens"]["head"][:3] == ["<unk>", "<s>", "</s>"]
    names = [t["name"] for t in info["tensors"]]
    assert "token_embd.weight" in names and "blk.1.ffn_down.weight" in names
    embd = info["tensors"][names.index("token_embd.weight")]
    assert (embd["type"], embd["shape"]) == ("F32", [256, 512])
    assert embd["bytes"] >= 256 * 512 * 4
    assert names == [t.name for t in want.tensors]
    code, out, _ = run_main(capsys, "inspect", scripted, "--json", "--full", "--no-tensors")
    info = json.loads(out)
    assert len(info["metadata"]["tokenizer.ggml.tokens"]) == 512 and info["tensors"] == []


def test_inspect_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(model_factory.tiny_model_with_tokenizer())
    code, out, _ = run_main(capsys, "inspect", path)
    assert code == 0
    assert "GGUF v3" in out
    assert '"bitnet-b1.58"' in out and "tokenizer.ggml.tokens" in out and "(512 elements)" in out
    line = next(row for row in out.splitlines() if "blk.0.attn_q.weight" in row)
    assert "I2_S" in line and "256 x 256" in line


def test_inspect_rejects_a_file_that_is_not_gguf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOTGGUF" + b"\0" * 64)
    code, _, err = run_main(capsys, "inspect", str(bad))
    assert code == 1 and "not a GGUF file" in err


# ---- perplexity ---------------------------------------------------------------------------------


def test_perplexity_json_equals_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(model_factory.tiny_model_with_tokenizer())
    text = "Sphinx of black quartz, judge my vow. The five boxing wizards jump quickly. " * 3
    file = tmp_path / "text.txt"
    file.write_text(text, encoding="utf-8")
    code, out, err = run_main(capsys, "perplexity", path, str(file), "-c", "16", "--json")
    assert code == 0 and err == ""  # no progress bar with --json
    result = json.loads(out)
    with bitnet.Model(path, n_ctx=16) as m:
        assert result["ppl"] == pytest.approx(m.perplexity(text, n_ctx=16), rel=1e-12)
    assert result["n_ctx"] == 16 and result["n_scored"] == result["n_chunks"] * 7

    code, out, err = run_main(capsys, "perplexity", path, str(file), "-c", "16")
    assert code == 0 and out.startswith("PPL = ") and "perplexity" in err  # the bar


def test_perplexity_of_a_too_short_file_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "short.txt"
    file.write_text("too short", encoding="utf-8")
    code, _, err = run_main(capsys, "perplexity", str(model_factory.tiny_model_with_tokenizer()), str(file))
    assert code == 1 and "needs a text of at least" in err


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT, a POSIX signal")
def test_ctrl_c_during_bitnet_run_exits_130_with_one_line() -> None:
    """A real SIGINT in the middle of a long generation: no traceback, exit 130."""
    import signal
    import time

    from bitnet.default_model import default_model_path

    cmd = [sys.executable, "-m", "bitnet", "run", str(default_model_path()), "In the beginning", "-n", "100000",
           "-c", "32768", "--ignore-eos", "--temperature", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell without job control starts background jobs with SIGINT ignored, and Python keeps an
    # ignored SIGINT ignored: give the child the default disposition, as a terminal would.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        first = proc.stdout.read(64)  # generation is under way
        assert first, proc.stderr.read() if proc.stderr else ""
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - start < 10, "the interrupt took effect late"
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1] == "bitnet: interrupted"
    assert b"Traceback" not in err
