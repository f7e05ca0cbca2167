"""Validation and encoding shared by every backend, so each one accepts and returns the same.

Rules (the conformance suite pins them):

* ids (session, agent, user, tenant) are non-empty text of at most 255 characters;
* text must be storable in every dialect: NUL characters are rejected (PostgreSQL cannot store
  them in TEXT or JSONB), and so are lone surrogates (not valid UTF-8);
* metadata and state are JSON objects; NaN and infinities are rejected (not JSON), and so are
  integers outside int64/uint64 (the decoder would give them back rounded, as floats) and a
  key given twice (JSONB keeps one, text keeps both);
* what PostgreSQL's JSONB changes is changed at write for every backend, so all of them
  return the same value, types and key order included: keys in JSONB's order (shorter first,
  then by bytes), -0.0 as 0.0, whole floats from 1e16 as ints (see :func:`_canonical`);
* datetimes must be timezone-aware; they are stored and returned in UTC, to the microsecond,
  for every year 1 to 9999 (all that Python's datetime holds, and all that every backend
  keeps); a time whose offset takes it outside those years in UTC is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from mofa.persistence._entities import Role
from mofa.persistence.errors import DamagedRecordError, InvalidInputError

__all__ = [
    "MAX_ID_LENGTH",
    "ROLES",
    "TIME_TEXT_LENGTH",
    "check_datetime",
    "check_id",
    "check_limit",
    "check_optional_id",
    "check_role",
    "check_short_text",
    "check_text",
    "damaged_record",
    "decode_json",
    "encode_json",
    "format_time",
    "parse_time",
    "unreadable_field",
]

MAX_ID_LENGTH = 255
#: Stored role text -> Role (backends map each loaded row through it).
ROLES: Final = {role.value: role for role in Role}
_EMPTY_JSON = "{}"
#: A run of digits long enough to be an integer outside what JSON readers keep exactly.
_LONG_DIGITS = re.compile(r"\d{19}")
#: Integers every backend gives back exactly: the JSON decoder keeps int64 and uint64.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
#: Objects and lists may nest this deep (the outermost object is level 1): MariaDB's JSON
#: columns refuse one level more, and every backend must accept and refuse the same input.
MAX_JSON_DEPTH: Final = 31


def check_id(value: object, what: str = "session id") -> str:
    """Return ``value`` if it is a usable id, else raise :class:`InvalidInputError`."""
    if not isinstance(value, str):
        raise InvalidInputError(f"The {what} must be a string, not {type(value).__name__}.")
    if not value:
        raise InvalidInputError(f"The {what} is empty; give 1 to {MAX_ID_LENGTH} characters.")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(
            f"The {what} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}."
        )
    _check_storable(value, what)
    return value


def check_optional_id(value: object, what: str) -> str | None:
    """Like :func:`check_id`, but ``None`` passes through."""
    return None if value is None else check_id(value, what)


def check_short_text(value: object, what: str, max_length: int) -> str:
    """A bounded single value such as a status or an agent state."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"The {what} must be a non-empty string.")
    if len(value) > max_length:
        raise InvalidInputError(
            f"The {what} is {len(value)} characters long; the limit is {max_length}."
        )
    _check_storable(value, what)
    return value


def check_role(value: object) -> Role:
    """Return the :class:`Role` for ``value`` or raise naming the accepted roles."""
    if isinstance(value, Role):
        return value
    role = ROLES.get(value) if isinstance(value, str) else None
    if role is None:
        raise InvalidInputError(f"Unknown message role {value!r}; use one of: {', '.join(ROLES)}.")
    return role


def check_text(value: object, what: str = "message content") -> str:
    """Message content: any string every backend can store byte for byte."""
    if not isinstance(value, str):
        raise InvalidInputError(f"The {what} must be a string, not {type(value).__name__}.")
    _check_storable(value, what)
    return value


def _check_storable(value: str, what: str) -> None:
    if "\x00" in value:
        raise InvalidInputError(
            f"The {what} contains a NUL character (\\x00), which databases cannot store; "
            "remove it or encode the data (for example as base64)."
        )
    if value.isascii():  # no surrogate possible; skips encoding a copy of the text
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"The {what} contains a lone surrogate ({value[exc.start]!r} at index {exc.start}), "
            "which is not valid Unicode text; fix how the text was decoded."
        ) from None


def encode_json(value: Mapping[str, Any] | None, what: str = "metadata") -> str:
    """Encode a JSON object for storage, or raise :class:`InvalidInputError`.

    The text is canonical (see :func:`_canonical`): what PostgreSQL's JSONB would change is
    changed here already, for every backend, so each one returns the same value.
    """
    if value is None or (isinstance(value, Mapping) and not value):
        return _EMPTY_JSON
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"The {what} must be a JSON object (a dict), not {type(value).__name__}."
        )
    canonical = _canonical(value, what, 1)
    try:
        text = json.dumps(canonical, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"The {what} cannot be stored as JSON ({_json_reason(exc)}); "
            "use only dicts, lists, strings, finite numbers, booleans and None."
        ) from None
    if "\\u0000" in text:
        _walk_strings(canonical, what)
    if _LONG_DIGITS.search(text):  # rare: only then look for integers that would be rounded
        _check_integers(canonical, what)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        _walk_strings(canonical, what)
        raise  # pragma: no cover - _walk_strings raises first
    return text


#: Floats this large print with an exponent (1e+16) and are whole numbers; JSONB keeps them
#: as integers (10000000000000000), which the decoder reads back as ints.
_WHOLE_FLOATS_FROM: Final = 1e16


def _jsonb_key_order(key: str) -> tuple[int, str]:
    # JSONB's order: shorter keys (in UTF-8 bytes) first, then bytewise, which for UTF-8 is
    # code point order, i.e. str order. (Lone surrogates are refused after encoding.)
    return (len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass")), key)


def _canonical(value: Any, what: str, depth: int) -> Any:
    """``value`` as every backend gives it back, which is how PostgreSQL's JSONB stores it:

    * object keys in JSONB's order (shorter first, then by their bytes), so the same keys
      come back in the same order from every backend (and print the same in the CLI);
    * ``-0.0`` as ``0.0``, and a whole float from 1e16 up (in the 64-bit integer range) as
      the int JSONB turns it into; ``==`` holds between both forms;
    * each key once: a dict subclass or str-subclass keys could give a key twice, and JSONB
      would keep only the last, so that is refused;

    and refuses keys that are not strings and nesting deeper than :data:`MAX_JSON_DEPTH`.
    Anything else is left for ``json.dumps`` to judge. Recursion stops at that depth, so no
    input can exhaust the interpreter's stack (a cycle is simply too deep).
    """
    if isinstance(value, dict):
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(what)
        items: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"The {what} has the key {key!r}, which is not a string; JSON keys "
                        "are strings, so write it as one."
                    )
                key = str.__str__(key)  # a str subclass: its text is what JSON keeps
            if key in items:
                raise InvalidInputError(
                    f"The {what} has the key {key!r} twice; a JSON object holds each key "
                    "once, so keep one of them."
                )
            items[key] = _canonical(item, what, depth + 1)
        if len(items) < 2:
            return items
        order = sorted(items, key=_jsonb_key_order)
        return {key: items[key] for key in order}
    if isinstance(value, list | tuple):
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(what)
        return [_canonical(item, what, depth + 1) for item in value]
    if isinstance(value, float):
        if value == 0.0:
            return 0.0  # -0.0 too: JSONB keeps no sign on zero
        if abs(value) >= _WHOLE_FLOATS_FROM and _INT_MIN <= value <= _INT_MAX:
            return int(value)
        return float(value)
    return value


def _too_deep(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The {what} nests objects and lists more than {MAX_JSON_DEPTH} levels deep, which "
        "MariaDB cannot store; flatten it, or store the deep part as a JSON string."
    )


def _json_reason(exc: Exception) -> str:
    text = str(exc)
    if "Out of range float" in text:
        return "NaN and infinity are not JSON numbers"
    if "keys must be" in text:
        return "every key must be a string"
    return text.rstrip(".")


def _walk_strings(value: object, what: str) -> None:
    if isinstance(value, str):
        _check_storable(value, what)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk_strings(key, what)
            _walk_strings(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk_strings(item, what)


def _check_integers(value: object, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidInputError(
                f"The {what} holds the integer {value}, outside the 64-bit range that is read "
                "back exactly (it would come back rounded); store it as a string."
            )
    elif isinstance(value, Mapping):
        for item in value.values():
            _check_integers(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_integers(item, what)


def decode_json(text: str | bytes | None) -> dict[str, Any]:
    """Decode a stored JSON object (once, with a fast path for the common empty one).

    Raises ValueError for text that is not a JSON object; backends report that as a
    :class:`DamagedRecordError` naming the record.
    """
    if text is None or text == _EMPTY_JSON:
        return {}
    value = orjson.loads(text)
    if type(value) is not dict:  # only a hand-edited row holds anything else
        raise ValueError(f"not a JSON object: {text!r}")
    return value


#: Stored fields by how a backend reads them back (see :func:`damaged_record`).
_JSON_FIELDS: Final = frozenset({"metadata", "state"})
_TIME_FIELDS: Final = frozenset({"created_at", "updated_at", "started_at", "timestamp"})
_NULLABLE_TIME_FIELDS: Final = frozenset({"expires_at"})


def damaged_record(
    record: str,
    fields: Mapping[str, object],
    failure: BaseException,
    *,
    session_id: str | None = None,
) -> DamagedRecordError:
    """The error for a stored record whose decoding raised ``failure``.

    Decoding stays one pass without checks on the hot path; only when it fails does this
    look at the record's ``fields`` (name -> the value the backend read) one by one, to name
    the first that cannot be read.
    """
    field = unreadable_field(fields)
    if field is None:  # every listed field reads on its own: report what decoding said
        return DamagedRecordError(record, "value", str(failure), session_id=session_id)
    return DamagedRecordError(record, field, fields[field], session_id=session_id)


def unreadable_field(fields: Mapping[str, object]) -> str | None:
    """The first of ``fields`` (name -> stored value) that cannot be read back, if any."""
    for field, value in fields.items():
        if not _readable(field, value):
            return field
    return None


def _readable(field: str, value: object) -> bool:
    if field == "role":
        return isinstance(value, str) and value in ROLES
    if field in _JSON_FIELDS:
        if value is None or type(value) is dict:
            return True  # NULL reads as {}; the file store holds objects already parsed
        readable: Callable[[Any], object] = decode_json
    elif field in _TIME_FIELDS or field in _NULLABLE_TIME_FIELDS:
        if value is None:
            return field in _NULLABLE_TIME_FIELDS
        if isinstance(value, datetime):
            return True  # the server drivers hand over datetimes (naive ones in UTC)
        readable = parse_time
    else:
        return True
    try:
        readable(value)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def check_datetime(value: object, what: str) -> datetime:
    """A timezone-aware datetime, converted to UTC (whose year must stay within 1 to 9999)."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"The {what} must be a datetime, not {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"The {what} {value.isoformat()} has no timezone; pass an aware datetime "
            "(for example datetime.now(UTC))."
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # Only a time within a day of year 1 or 9999 gets here: its offset moves it out.
        raise InvalidInputError(
            f"The {what} {value.isoformat()} falls outside the years 1 to 9999 in UTC; "
            "pass a time from 0001-01-01 00:00 to 9999-12-31 23:59:59.999999 UTC."
        ) from None


#: The largest ``seq`` or state ``version`` a store can hold (PostgreSQL's INTEGER).
MAX_SEQ: Final = 2**31 - 1
#: Larger counts than any store holds: a bigger limit or offset means the same as this one,
#: which every database accepts (their LIMIT stops at 2**63 - 1).
_MAX_COUNT: Final = 2**62


def check_limit(value: object, what: str = "limit") -> int | None:
    """``None`` (no limit) or a non-negative integer (capped at a count no store reaches)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"The {what} must be a non-negative integer, not {value!r}.")
    return min(value, _MAX_COUNT)


#: The text length of :func:`format_time`'s output: its fixed width is what keeps text order
#: time order in SQLite and the file store.
_TIME_TEXT_LENGTH: Final = 26
#: The length of :func:`format_time`'s text (a row reader's inline fast path checks it).
TIME_TEXT_LENGTH: Final = _TIME_TEXT_LENGTH
#: A year of fewer than four digits at the start of a time: how versions before the four-digit
#: rule wrote years 1 to 999 (strftime's %Y does not pad on glibc).
_SHORT_YEAR = re.compile(r"^\d{1,3}(?=-)")


def format_time(value: datetime) -> str:
    """Format a datetime as fixed-width UTC text (``0999-01-01 00:00:00.000000``), the form
    SQLite and the file store keep: every year 1 to 9999 in four digits, so text order is
    time order."""
    # isoformat pads the year (strftime("%Y") does not, on glibc) and is 2x faster.
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:_TIME_TEXT_LENGTH]


def parse_time(text: str) -> datetime:
    """Parse :func:`format_time` output (and SQLite's ``CURRENT_TIMESTAMP`` form) as UTC.

    Raises ValueError or TypeError for anything else; backends report that as a
    :class:`DamagedRecordError` naming the record.
    """
    if len(text) == _TIME_TEXT_LENGTH:
        # format_time's own form, on every row a load reads: naming the zone in the text is
        # ~5x faster than .replace(tzinfo=UTC).
        return datetime.fromisoformat(text + "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # Written before years were padded ('999-01-01 …'): still the time it was meant as.
        padded = _SHORT_YEAR.sub(lambda year: year[0].zfill(4), text, count=1)
        if padded == text:
            raise
        parsed = datetime.fromisoformat(padded)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
