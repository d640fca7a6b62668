"""Chat: templates (bitnet.chat_templates) and ``Model.chat`` / ``chat_stream``.

The built-in templates must produce these exact strings; a GGUF's own
``tokenizer.chat_template`` wins over them; templates render in jinja2's
sandbox the way Hugging Face transformers renders them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

bitnet = pytest.importorskip("bitnet")
pytest.importorskip("jinja2")
from bitnet import chat_templates as ct  # noqa: E402

from reference import gguf_io as G  # noqa: E402
from reference.scripted_model import ANSWER, EOT, demo_model  # noqa: E402

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "Bye"},
]

EXPECTED = {
    "bitnet": "System: You are terse.<|eot_id|>User: Hi<|eot_id|>Assistant: Hello<|eot_id|>User: Bye<|eot_id|>"
              "Assistant: ",
    "llama3": "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "chatml": "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
              "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
    "falcon3": "<|system|>\nYou are terse.\n<|user|>\nHi\n<|assistant|>\nHello\n<|user|>\nBye\n<|assistant|>\n",
}

GGUF_TEMPLATE = (
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


# ---- templates ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_templates_render_the_documented_strings(name: str) -> None:
    assert ct.render(ct.BUILTIN_TEMPLATES[name], CONVERSATION) == EXPECTED[name]


def test_builtin_names_are_all_tested() -> None:
    assert set(ct.BUILTIN_TEMPLATES) == set(EXPECTED)


def test_bitnet_template_trims_content_and_can_omit_the_generation_prompt() -> None:
    msgs = [{"role": "user", "content": "  Hi \n"}]
    out = ct.render(ct.BUILTIN_TEMPLATES["bitnet"], msgs, add_generation_prompt=False)
    assert out == "User: Hi<|eot_id|>"


def test_blocks_are_trimmed_like_transformers() -> None:
    # trim_blocks drops the newline after a block tag, lstrip_blocks the
    # indentation before one; the indentation before {{ }} stays.
    source = (
        "{% for m in messages %}\n"
        "    {% if m.role == 'user' %}\n"
        "  {{ m.content }}\n"
        "    {% endif %}\n"
        "{% endfor %}\n"
    )
    assert ct.render(source, [{"role": "user", "content": "hi"}]) == "  hi\n"


def test_helpers_of_transformers_are_there() -> None:
    msgs = [{"role": "user", "content": "café"}]
    assert ct.render("{{ strftime_now('%Y') }}", msgs) == str(datetime.now().year)
    assert ct.render("{{ messages | tojson }}", msgs) == '[{"role": "user", "content": "café"}]'
    assert ct.render("{% for m in messages %}{% break %}{% endfor %}ok", msgs) == "ok"  # loopcontrols
    with pytest.raises(ct.ChatTemplateError, match="roles must alternate"):
        ct.render("{{ raise_exception('roles must alternate') }}", msgs)
    assert ct.render("{{ bos_token }}|{{ eos_token }}", msgs, bos_token="<s>", eos_token="</s>") == "<s>|</s>"


def test_the_sandbox_keeps_templates_away_from_python_internals() -> None:
    msgs = [{"role": "user", "content": "x"}]
    # An unsafe attribute is undefined (renders empty) ...
    assert "class" not in ct.render("{{ ''.__class__ }}", msgs)
    # ... and going on from it is a security error, not a list of every class.
    with pytest.raises(ct.ChatTemplateError, match="unsafe"):
        ct.render("{{ ''.__class__.__mro__[1].__subclasses__() }}", msgs)
    # Immutable: a template cannot change the messages it was given.
    with pytest.raises(ct.ChatTemplateError):
        ct.render("{{ messages.append({'role': 'user', 'content': 'injected'}) }}", msgs)
    assert msgs == [{"role": "user", "content": "x"}]


def test_template_syntax_errors_are_chat_template_errors() -> None:
    with pytest.raises(ct.ChatTemplateError, match="chat template"):
        ct.render("{% for m in messages %}", [{"role": "user", "content": "x"}])
    assert issubclass(ct.ChatTemplateError, ValueError)


@pytest.mark.parametrize(
    "messages",
    [[], "hello", [{"role": "user"}], [{"role": "user", "content": 3}], ["hello"]],
)
def test_bad_messages_are_rejected(messages: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        ct.render(ct.BUILTIN_TEMPLATES["chatml"], messages)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metadata", "name"),
    [
        ({"general.architecture": "bitnet-b1.58"}, "bitnet"),
        ({"general.architecture": "bitnet-25", "tokenizer.ggml.tokens": ["<|im_start|>"]}, "bitnet"),
        ({"general.architecture": "llama",
          "tokenizer.ggml.tokens": ["a", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}, "llama3"),
        ({"general.architecture": "qwen2", "tokenizer.ggml.tokens": ["<|im_start|>", "<|im_end|>"]}, "chatml"),
        ({"general.architecture": "llama", "tokenizer.ggml.tokens": ["<|user|>", "<|assistant|>"]}, "falcon3"),
        ({"general.architecture": "llama", "tokenizer.ggml.tokens": ["a", "b"]}, "chatml"),
        ({}, "chatml"),
    ],
)
def test_builtin_format_is_guessed_from_architecture_and_vocabulary(metadata: dict, name: str) -> None:
    assert ct.guess_chat_format(metadata) == name


def test_template_choice_order() -> None:
    meta = {"general.architecture": "bitnet-b1.58", "tokenizer.chat_template": GGUF_TEMPLATE}
    assert ct.template_source(meta) == GGUF_TEMPLATE  # the GGUF's own first
    assert ct.template_source(meta, "chatml") == ct.BUILTIN_TEMPLATES["chatml"]  # unless asked otherwise
    assert ct.template_source(meta, "{{ 'custom' }}") == "{{ 'custom' }}"  # a template given as text
    assert ct.template_source({"general.architecture": "bitnet-b1.58", "tokenizer.chat_template": "  "}) \
        == ct.BUILTIN_TEMPLATES["bitnet"]  # an empty template counts as none
    with pytest.raises(ValueError, match="bitnet, chatml, falcon3, llama3"):
        ct.template_source(meta, "vicuna")


# ---- Model.chat ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("chat")
    return {
        "plain": demo_model(d / "plain.gguf"),
        "own_template": demo_model(d / "own.gguf", extra_kv={"tokenizer.chat_template": G.kv_str(GGUF_TEMPLATE)}),
        "bos_template": demo_model(d / "bos.gguf", add_bos=True, extra_kv={
            "tokenizer.chat_template": G.kv_str("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}")}),
    }


def test_chat_answers_and_stops_at_end_of_turn(models: dict[str, Path]) -> None:
    with bitnet.Model(models["plain"]) as m:
        msgs = [{"role": "user", "content": "Hi"}]
        assert m.chat(msgs, chat_format="bitnet") == ANSWER
        s = m.chat_stream(msgs, chat_format="bitnet")
        assert "".join(s) == ANSWER and s.finish_reason == "stop"
        assert s.n_tokens == 4  # three tokens of text and <|eot_id|>


def test_chat_prompt_uses_the_builtin_or_the_ggufs_template(models: dict[str, Path]) -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    with bitnet.Model(models["plain"]) as m:  # llama arch, <|im_start|> in the vocabulary, no template
        assert m.chat_prompt(msgs) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        assert m.chat_prompt(msgs, "bitnet") == "User: Hi<|eot_id|>Assistant: "
    with bitnet.Model(models["own_template"]) as m:
        assert m.chat_prompt(msgs) == "[user]Hi[assistant]"
        assert m.chat(msgs) == ANSWER


def test_control_token_text_in_the_prompt_becomes_control_tokens(models: dict[str, Path]) -> None:
    with bitnet.Model(models["plain"]) as m:
        ids = m.chat_tokens(CONVERSATION, "bitnet")
        assert ids.count(EOT) == 4  # one <|eot_id|> token per message
        assert ids[0] != m.bos_id  # this GGUF does not ask for BOS


def test_bos_is_added_once(models: dict[str, Path]) -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    with bitnet.Model(models["bos_template"]) as m:
        assert m.chat_prompt(msgs).startswith("<s>Hi")  # the template writes bos_token itself
        ids = m.chat_tokens(msgs)
        assert ids[0] == m.bos_id and ids.count(m.bos_id) == 1
        # A built-in template has no BOS text: the tokenizer adds it.
        ids = m.chat_tokens(msgs, "chatml")
        assert ids[0] == m.bos_id and ids.count(m.bos_id) == 1
