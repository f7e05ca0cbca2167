"""YAML as the CLI writes it: the seeds' layout, read back to the same values.

Kept apart from :mod:`mofa.cli._render` so that PyYAML loads only when YAML is printed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import yaml

from mofa.cli._render import iso_time

__all__ = ["dump"]

#: Wide enough that PyYAML never folds a long string over several lines.
_YAML_WIDTH: Final = 1 << 30


class _YamlDumper(yaml.SafeDumper):
    """Safe YAML in the seeds' layout: list items indented under their key, no folding."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # PyYAML puts a mapping's list at the key's own indentation ("key:\n- a");
        # the seeds indent it ("key:\n  - a"). Both parse the same.
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        # A multi-line single-quoted scalar depends on the indentation it is written at;
        # double quotes escape the line breaks, so an item reads the same at any indent.
        if style == "'" and self.analysis is not None and self.analysis.multiline:
            return '"'
        return style


def _represent_datetime(dumper: yaml.SafeDumper, value: datetime) -> yaml.ScalarNode:
    # A YAML timestamp, written the way the JSON view writes it; safe_load reads it back as
    # the same (UTC-aware) datetime.
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", iso_time(value))


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text as a literal block: readable, and still exact when read back (PyYAML
    # falls back to a quoted scalar when a block cannot hold the text faithfully).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_YamlDumper.add_representer(datetime, _represent_datetime)
_YamlDumper.add_representer(str, _represent_str)


def dump(value: object) -> str:
    """Block-style YAML that ``yaml.safe_load`` reads back to ``value`` (keys in order)."""
    text: str = yaml.dump(
        value,
        Dumper=_YamlDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=_YAML_WIDTH,
    )
    return text
