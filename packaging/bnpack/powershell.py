"""Parsing PowerShell without PowerShell: tree-sitter's grammar (packaging/requirements.txt)."""
from __future__ import annotations

from typing import Any, Iterator

from .common import ReleaseError


def parser() -> Any:
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError as exc:
        raise ReleaseError("python modules `tree_sitter`, `tree_sitter_powershell` not found: "
                           "pip install -r packaging/requirements.txt") from exc
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def walk(node: Any) -> Iterator[Any]:
    """The node and all its descendants, depth first."""
    yield node
    for child in node.children:
        yield from walk(child)


def syntax_errors(source: bytes) -> list[str]:
    """``line:col: what`` for each ERROR or MISSING node of the parse tree (empty: it parses)."""
    tree = parser().parse(source)
    errors = []
    for node in walk(tree.root_node):
        row, col = node.start_point
        if node.is_missing:
            errors.append(f"{row + 1}:{col + 1}: missing {node.type!r}")
        elif node.is_error:
            errors.append(f"{row + 1}:{col + 1}: syntax error at {node.text[:40].decode(errors='replace')!r}")
    if tree.root_node.has_error and not errors:
        errors.append("the parse tree has errors")
    return errors
