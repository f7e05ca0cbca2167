"""YAML for configuration files: PyYAML's safe loader, bounded.

``yaml.safe_load`` builds a document by recursion, so 20,000 nested ``[`` end in a
``RecursionError``; and it keeps an alias (``*name``) as a second reference to its anchor's
value, which every later walk over the document (``${VAR}`` expansion, key checks) expands:
a few hundred bytes of aliases of aliases ("billion laughs") stand for 10^9 values, and an
anchor that contains its own alias for infinitely many. :func:`load` refuses each of these
while the document is still a graph of nodes, before a single value is built, by measuring
the document as it would be once expanded: its depth and its number of values.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_VALUES", "DocumentTooComplexError", "load"]

#: Deepest nesting accepted, counted once aliases are expanded (agent.yml needs 3 or 4).
MAX_DEPTH = 64
#: Most values (scalars, lists and mappings, keys included) once aliases are expanded.
MAX_VALUES = 10_000


class DocumentTooComplexError(ValueError):
    """The document nests too deeply, expands to too many values, or refers to itself; the
    message is the problem, written to follow the file's name."""


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that stops composing past :data:`MAX_DEPTH` levels (composing, like
    building, recurses once per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
                at = "" if event.start_mark is None else f" (at line {event.start_mark.line + 1})"
                raise DocumentTooComplexError(
                    f"nests more than {MAX_DEPTH} levels deep{at}; a "
                    "configuration needs only a few levels, so check the file"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Raise if ``root`` expanded (every alias replaced by a copy of its anchor's value)
    would be deeper than :data:`MAX_DEPTH` or hold more than :data:`MAX_VALUES` values, or
    if a value contains itself.

    Iterative, and each node is measured once (an alias shares its anchor's node), so the
    check costs the size of the file, not of the expansion.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    started: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_measured = stack.pop()
        key = id(node)
        if children_measured:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            if size[key] > MAX_VALUES:
                raise DocumentTooComplexError(
                    f"expands to more than {MAX_VALUES:,} values through its aliases (at line "
                    f"{node.start_mark.line + 1}); write the values out instead of aliases of "
                    "aliases"
                )
            if depth[key] > MAX_DEPTH:
                raise DocumentTooComplexError(
                    f"nests more than {MAX_DEPTH} levels deep once its aliases are expanded "
                    f"(at line {node.start_mark.line + 1}); write the values out instead"
                )
            continue
        if key in size:
            continue  # another alias of a value already measured
        if key in started:
            # Everything pushed since this node started is inside it: it contains itself.
            raise DocumentTooComplexError(
                f"holds a value that contains itself through an alias (at line "
                f"{node.start_mark.line + 1}); remove that alias"
            )
        started.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def load(text: str) -> Any:
    """The document in ``text``, like ``yaml.safe_load``; :class:`DocumentTooComplexError`
    for one too deep or too large once expanded, ``yaml.YAMLError`` for one that is not YAML.
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()
