"""The JSON Schema shipped with mofa.persistence.transfer describes what the package writes:
every key of an export (document, jsonl lines, messages, states, agent) is one the schema
names, every key it requires is written, and every time matches its pattern."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

from mofa.persistence import open_store
from mofa.persistence.testing.conformance.transfer import fill
from mofa.persistence.transfer import SCHEMA_PATH, export_session

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
TIME = re.compile(SCHEMA["$defs"]["time"]["pattern"])


def _export(kind: str) -> bytes:
    async def go() -> bytes:
        async with await open_store("memory://") as store:
            await fill(store)
            buffer = io.BytesIO()
            await export_session(store, "awkward", buffer, format=kind)  # type: ignore[arg-type]
            return buffer.getvalue()

    return asyncio.run(go())


def _conforms(value: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    assert set(schema["required"]) <= set(value), where
    assert set(value) <= set(schema["properties"]), where
    for key, rule in schema["properties"].items():
        if rule == {"$ref": "#/$defs/time"} and key in value:
            assert TIME.fullmatch(value[key]), f"{where}.{key}"


def test_a_json_export_conforms_to_the_shipped_schema() -> None:
    document = json.loads(_export("json"))
    _conforms(document, SCHEMA, "$")
    definitions = SCHEMA["$defs"]
    _conforms(document["agent"], definitions["agent"], "$.agent")
    _conforms(document["integrity"], definitions["integrity"], "$.integrity")
    for index, message in enumerate(document["messages"]):
        _conforms(message, definitions["message"], f"$.messages[{index}]")
    for index, state in enumerate(document["agent_state"]):
        _conforms(state, definitions["state"], f"$.agent_state[{index}]")


def test_every_jsonl_line_conforms_to_the_shipped_schema() -> None:
    lines = [json.loads(line) for line in _export("jsonl").splitlines()]
    assert [line["type"] for line in lines] == ["session", "state", "state", *["message"] * 5]
    _conforms(lines[0], SCHEMA, "line 1")
    for number, line in enumerate(lines[1:], start=2):
        _conforms(line, SCHEMA["$defs"][line["type"]], f"line {number}")


def test_the_schema_ships_in_the_package() -> None:
    assert SCHEMA_PATH.is_file()
    assert SCHEMA["title"] == "mofa-session/1"
