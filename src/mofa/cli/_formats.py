"""One ``--format`` for every command that prints records: table, json, jsonl, csv, yaml.

Commands hand rows (plain dictionaries, times as :class:`~datetime.datetime`) to
:func:`write_records`; the format decides how a value is written, the same way everywhere:

- ``table``: a box table; times ``2024-02-28 10:30:00`` (UTC, the seeds' table form).
- ``json``: one array (the seeds' ``--output-format json``), ``jsonl``: one object per line,
  ``yaml``: one list, ``csv``: a header line then one line per record (nested values as
  JSON text, no value as an empty cell). Times in all four: RFC 3339 UTC to the second,
  ``2024-02-28T10:30:00Z``.

Every machine format is written a record at a time, so a long listing is never held as text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import click

from mofa.cli._render import box_table, iso_time, to_json

__all__ = [
    "FORMATS",
    "MACHINE_FORMATS",
    "Format",
    "RecordWriter",
    "csv_cell",
    "format_option",
    "jsonl_line",
    "write_records",
]

Format = Literal["table", "json", "jsonl", "csv", "yaml"]
FORMATS: Final = ("table", "json", "jsonl", "csv", "yaml")
MACHINE_FORMATS: Final = frozenset({"json", "jsonl", "csv", "yaml"})


def format_option(*names: str, formats: Sequence[str] = FORMATS) -> Callable[[Any], Any]:
    """The ``-f/--format`` option (``names`` adds a command's aliases), ``table`` by default."""
    return click.option(
        "-f",
        "--format",
        *names,
        "output_format",
        type=click.Choice(list(formats), case_sensitive=False),
        default="table",
        show_default=True,
        help="Output format: " + ", ".join(formats) + ". Times in the machine formats are "
        "RFC 3339 UTC (2024-02-28T10:30:00Z).",
    )


def _compact(value: object) -> str:
    import json

    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), default=_json_time, allow_nan=False
    )


def _json_time(value: object) -> object:
    if isinstance(value, datetime):
        return iso_time(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonl_line(record: Mapping[str, Any]) -> str:
    """One JSON Lines line (with its newline): the record, compact, times in RFC 3339."""
    return _compact(dict(record)) + "\n"


def csv_cell(value: object) -> str:
    """A value as a CSV cell: text as it is, times in RFC 3339, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, Mapping | list | tuple):
        return _compact(value)
    return str(value)


class _Line:
    """A file-like sink for :mod:`csv` that hands each line to ``write``."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write


class RecordWriter:
    """Writes records in one format as they come (:meth:`add`, then :meth:`finish`): the
    machine formats write each record at once; a table keeps its rows until the end, as it
    needs their widths."""

    def __init__(
        self,
        output_format: str,
        write: Callable[[str], object],
        *,
        columns: Sequence[str],
        empty_table: str = "No records found.",
    ) -> None:
        self._format = output_format
        self._write = write
        self._columns = columns
        self._empty_table = empty_table
        self._rows: list[list[Any]] = []
        self._csv: Any = None
        self.count = 0
        if output_format == "csv":
            import csv

            self._csv = csv.writer(_Line(write), lineterminator="\n")
            self._csv.writerow(columns)

    def add(self, record: Mapping[str, Any]) -> None:
        columns = self._columns
        if self._format == "table":
            self._rows.append([record.get(column) for column in columns])
        elif self._csv is not None:
            self._csv.writerow([csv_cell(record.get(column)) for column in columns])
        else:
            row = {column: record.get(column) for column in columns}
            if self._format == "jsonl":
                self._write(jsonl_line(row))
            elif self._format == "json":
                body = to_json(row).replace("\n", "\n  ")
                self._write(("[\n  " if self.count == 0 else ",\n  ") + body)
            else:  # yaml: each record a one-item list, which concatenate into one list
                from mofa.cli._render import to_yaml

                self._write(to_yaml([row]))
        self.count += 1

    def finish(self) -> int:
        """End the output (with a newline); return how many records it holds."""
        if self._format == "table":
            rows = self._rows
            self._write((box_table(self._columns, rows) if rows else self._empty_table) + "\n")
        elif self._format == "json":
            self._write("\n]\n" if self.count else "[]\n")
        elif self._format == "yaml" and not self.count:
            self._write("[]\n")
        return self.count


def write_records(
    records: Iterable[Mapping[str, Any]],
    output_format: str,
    write: Callable[[str], object],
    *,
    columns: Sequence[str],
    empty_table: str = "No records found.",
) -> int:
    """Write ``records`` (their ``columns``, in order) in ``output_format``; return how many.

    The text ends with a newline. A table of nothing prints ``empty_table`` instead.
    """
    writer = RecordWriter(output_format, write, columns=columns, empty_table=empty_table)
    for record in records:
        writer.add(record)
    return writer.finish()
