"""``bitnet chat MODEL``: talk with a chat model, one line of input per turn.

The conversation is formatted with the model's chat template (or a built-in
one, --chat-format) and each answer streams to stdout as it is generated.
Commands: /reset forgets the conversation (the system prompt stays), /exit
(or end of input) quits, /help lists them. Ctrl-C during an answer stops that
answer and returns to the prompt. Reads stdin line by line, so input can be
piped (no prompt marker is printed then).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ._cli_common import add_model_argument, add_model_options, add_sampling_options, fail, open_model, sampling_kwargs

COMMANDS_HELP = "/reset: forget the conversation   /exit: quit   /help: this list"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from .chat_templates import BUILTIN_TEMPLATES

    p = subparsers.add_parser(
        "chat",
        help="interactive chat with a chat model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_argument(p)
    p.add_argument("--system", default=None, metavar="TEXT", help="system prompt")
    p.add_argument("--chat-format", choices=sorted(BUILTIN_TEMPLATES), default=None,
                   help="built-in chat template to use instead of the model's own")
    add_sampling_options(p, max_tokens_default=None)
    add_model_options(p)
    return p


class ChatSession:
    """The conversation: messages so far and how to answer the next line."""

    def __init__(self, model: Any, args: argparse.Namespace, out: TextIO) -> None:
        self.model = model
        self.args = args
        self.out = out
        self.sampling = sampling_kwargs(args)
        self.system = [{"role": "system", "content": args.system}] if args.system else []
        self.messages: list[dict[str, str]] = list(self.system)

    def reset(self) -> None:
        self.messages = list(self.system)

    def answer(self, line: str) -> None:
        """Stream the answer to one user line and add both to the conversation.

        Ctrl-C stops the answer; what was shown so far stays in the conversation.
        A conversation grown past the context is reported and the line dropped."""
        from ._errors import BitNetError

        self.messages.append({"role": "user", "content": line})
        pieces: list[str] = []
        try:
            with self.model.chat_stream(self.messages, self.args.max_tokens, stop=self.args.stop,
                                        chat_format=self.args.chat_format, **self.sampling) as stream:
                for piece in stream:
                    pieces.append(piece)
                    self.out.write(piece)
                    self.out.flush()
        except KeyboardInterrupt:
            print("\n[answer stopped]", file=sys.stderr)
        except BitNetError as exc:
            if exc.status != -6:  # BITNET_ERR_CONTEXT_FULL
                raise
            self.messages.pop()
            fail(f"the conversation no longer fits in the context ({self.model.n_ctx} tokens): "
                 "/reset to start over, or use a larger -c")
            return
        self.out.write("\n")
        self.out.flush()
        self.messages.append({"role": "assistant", "content": "".join(pieces)})


def run(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()
    with open_model(args) as model:
        session = ChatSession(model, args, sys.stdout)
        try:
            model.chat_prompt(session.system + [{"role": "user", "content": "hi"}], args.chat_format)
        except ValueError as exc:  # a template that cannot render: say so before the first turn
            return fail(str(exc))
        if interactive:
            print(f"chatting with {model.description}; {COMMANDS_HELP}", file=sys.stderr)
        while True:
            line = _read_line(interactive)
            if line is None:  # end of input
                return 0
            command = line.strip()
            if not command:
                continue
            if command in ("/exit", "/quit"):
                return 0
            if command == "/reset":
                session.reset()
                print("[conversation reset]", file=sys.stderr)
                continue
            if command in ("/help", "/?"):
                print(COMMANDS_HELP, file=sys.stderr)
                continue
            session.answer(line)


def _read_line(interactive: bool) -> str | None:
    """The next input line without its newline; None at end of input. At a
    terminal, input() with a "> " prompt (and line editing where the readline
    module exists); piped input is read plainly, with no prompt."""
    if interactive:
        try:
            import readline  # noqa: F401  (gives input() editing and history)
        except ImportError:
            pass
        try:
            return input("> ")
        except EOFError:
            print()
            return None
    line = sys.stdin.readline()
    return line.rstrip("\r\n") if line else None
