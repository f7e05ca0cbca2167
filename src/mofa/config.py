"""``agent.yml``: the agent configuration file, as the MoFA docs show it.

::

    agent:
      id: my-agent
      name: My Agent

    persistence:
      enabled: true
      database:
        type: postgres
        url: ${DATABASE_URL}
      # or
      # database:
      #   type: sqlite
      #   path: ~/.local/share/mofa/mofa.db

    session:
      persist: true
      ttl_seconds: 86400

    llm:                      # optional: provider settings for LLMAgentBuilder
      model: gpt-4o-mini
      base_url: ${OPENAI_BASE_URL:-}   # ":-": optional; a bare unset ${VAR} is an error

``${VAR}`` (and ``${VAR:-default}``) in any value is expanded from the environment, then from
``./.env`` (the current directory), then from the ``.env`` beside the configuration file (see
:func:`environment`; python-dotenv reads them, and a line it cannot read is an error naming
file:line). A variable that is not set is an error only when its value is used (``${VAR:-}``
makes it optional). A relative ``path:`` is relative to the configuration file's directory.

The YAML is read safely and bounded: a document nested more than 64 levels deep, or whose
aliases would expand to more than 10,000 values (a "billion laughs"), is refused in one
sentence before it is built.

A key these sections do not know (``llm: {modle: …}``) is an error naming the closest known
key; so is a top-level section whose name is a near miss of one (``persistance:``). Other
top-level sections are kept in :attr:`MofaConfig.raw` for extensions. ``repr()`` of the parsed
configuration masks passwords and API keys.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from mofa import _dotenv, _yaml

__all__ = [
    "AgentSection",
    "ConfigError",
    "DatabaseSection",
    "MofaConfig",
    "PersistenceSection",
    "SessionSection",
    "default_store_url",
    "environment",
    "expand_variables",
    "load_config",
    "read_dotenv",
]

DEFAULT_CONFIG_NAME = "agent.yml"
_VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
#: The keys each section knows; anything else is a typing mistake.
_KNOWN_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): ("agent", "persistence", "session", "llm"),
    ("agent",): ("id", "name", "description"),
    ("persistence",): ("enabled", "database"),
    ("persistence", "database"): ("type", "url", "path"),
    ("session",): ("persist", "ttl_seconds"),
    ("llm",): (
        "provider",
        "model",
        "base_url",
        "api_key",
        "temperature",
        "max_tokens",
        "timeout_seconds",
        "system_prompt",
        "history_limit",
    ),
}
#: Keys whose values are secrets: masked in ``repr()``.
_SECRET_KEY_RE = re.compile(r"(api_?key|password|passwd|secret|token)", re.IGNORECASE)


class ConfigError(ValueError):
    """The configuration file cannot be read or holds an unusable value."""


@dataclass(frozen=True, slots=True)
class _Value:
    """A string value after expansion, remembering variables that were not set."""

    text: str | None
    missing: tuple[str, ...] = ()


def read_dotenv(path: Path) -> dict[str, str]:
    """The ``NAME=value`` pairs of a ``.env`` file, read with python-dotenv (none when it is
    missing); :class:`ConfigError` naming file:line for a line it cannot read."""
    try:
        return _dotenv.read_dotenv(path)
    except _dotenv.DotenvError as exc:
        raise ConfigError(str(exc)) from None


def environment(
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    settings_only: bool = False,
) -> dict[str, str]:
    """The environment over ``./.env`` over the ``.env`` beside ``config_path``.

    With ``settings_only``, the files give only mofa's own settings (``OPENAI_*``, ``MOFA_*``,
    ``DATABASE_URL``); without it, every name, for ``${VAR}`` in agent.yml. Nothing is
    written to ``os.environ``. :class:`ConfigError` for a ``.env`` that cannot be read.
    """
    try:
        return _dotenv.layered_environment(config_path, environ, settings_only=settings_only)
    except _dotenv.DotenvError as exc:
        raise ConfigError(str(exc)) from None


def _scheme_backend(scheme: str) -> str | None:
    """The backend a URL scheme or ``type`` names (the persistence package loads on first use)."""
    from mofa.persistence._registry import scheme_backend as lookup

    return lookup(scheme)


def default_store_url(environ: Mapping[str, str]) -> str:
    """The URL of the local file store for ``environ``, whose ``MOFA_DATA_DIR`` may have come
    from a ``.env`` (see :func:`mofa.persistence.locations.default_data_dir`)."""
    from mofa.persistence import locations

    directory = environ.get("MOFA_DATA_DIR")
    if directory and directory != os.environ.get("MOFA_DATA_DIR"):
        return locations.directory_url(Path(directory).expanduser().absolute())
    return locations.default_store_url()


def expand_variables(text: str, environ: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Expand ``${VAR}`` / ``${VAR:-default}``; return the text and the names not set."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    return _VARIABLE_RE.sub(replace, text), tuple(missing)


@dataclass(frozen=True, slots=True)
class DatabaseSection:
    """``persistence.database``: a ``url``, or a ``type`` with a ``path`` (SQLite, files)."""

    type: str | None = None
    url: str | None = None
    path: str | None = None
    missing: tuple[str, ...] = ()
    source: Path | None = None

    def __repr__(self) -> str:
        url = None if self.url is None else _mask_text(self.url)
        return f"DatabaseSection(type={self.type!r}, url={url!r}, path={self.path!r})"

    def to_url(self) -> str:
        """The database URL this section describes; :class:`ConfigError` if it cannot."""
        where = f"{self.source}: " if self.source else ""
        if self.missing:
            names = ", ".join(f"${{{name}}}" for name in self.missing)
            raise ConfigError(
                f"{where}persistence.database uses {names}, which is not set; export it or "
                "put it in a .env file beside the configuration."
            )
        if self.url:
            self._check_type_matches(self.url, where)
            return self.url
        if self.path:
            path = Path(self.path).expanduser()
            if not path.is_absolute() and self.source is not None:
                # Relative to the configuration file, as its .env is: the same agent.yml
                # names the same database whichever directory it is used from.
                path = Path(os.path.abspath(self.source.parent / path))
            # Percent-encode: parse_url unquotes paths and a raw '?', '#' or '%' would be misread.
            kind = None if self.type is None else _scheme_backend(self.type)
            if kind in (None, "sqlite"):
                text = quote(str(path), safe="/~:@")
                return f"sqlite://{text}" if path.is_absolute() else f"sqlite://./{text}"
            if kind == "files":
                from mofa.persistence.locations import directory_url

                return directory_url(path.resolve())
        if self.type is not None and _scheme_backend(self.type) == "memory":
            return "memory://"
        raise ConfigError(
            f"{where}persistence.database needs a url (or, for sqlite, a path); "
            "for example: url: postgres://user:pass@localhost/mofa"
        )

    def _check_type_matches(self, url: str, where: str) -> None:
        if self.type is None:
            return
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        backend = _scheme_backend(scheme)
        if backend is not None and backend != _scheme_backend(self.type):
            raise ConfigError(
                f"{where}persistence.database.type is {self.type} but its url is a {scheme}: "
                "URL; make them agree, or leave type out."
            )


@dataclass(frozen=True, slots=True)
class PersistenceSection:
    enabled: bool = True
    database: DatabaseSection | None = None

    def database_url(self) -> str | None:
        """The configured URL, or ``None`` when persistence is off or names no database."""
        if not self.enabled or self.database is None:
            return None
        return self.database.to_url()


@dataclass(frozen=True, slots=True)
class SessionSection:
    persist: bool = True
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class AgentSection:
    id: str | None = None
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class MofaConfig:
    """A parsed ``agent.yml``. ``raw`` holds every section, expanded, for extensions."""

    path: Path | None
    agent: AgentSection = field(default_factory=AgentSection)
    persistence: PersistenceSection = field(default_factory=PersistenceSection)
    session: SessionSection = field(default_factory=SessionSection)
    llm: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    #: Key paths whose value used a ``${VAR}`` that is not set, with the variables' names.
    missing: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)

    def __repr__(self) -> str:  # passwords and keys stay out of reprs and logs
        return (
            f"MofaConfig(path={self.path!r}, agent={self.agent!r}, "
            f"persistence={self.persistence!r}, session={self.session!r}, "
            f"llm={_masked(self.llm)!r}, raw={_masked(self.raw)!r})"
        )

    def check_set(self, *key_path: str) -> None:
        """Raise :class:`ConfigError` if the value at ``key_path`` used a variable not set."""
        names = self.missing.get(key_path)
        if names:
            raise unset_variable_error(self.path, ".".join(key_path), names)


def unset_variable_error(path: Path | None, where: str, names: tuple[str, ...]) -> ConfigError:
    """The error for a value that uses ``${VAR}`` while ``VAR`` is not set."""
    variables = ", ".join(f"${{{name}}}" for name in names)
    verb = "is" if len(names) == 1 else "are"
    prefix = f"{path}: " if path is not None else ""
    return ConfigError(
        f"{prefix}{where} uses {variables}, which {verb} not set; export it, put it in a .env "
        "file beside the configuration, or write ${NAME:-} to make it optional."
    )


def _mask_text(text: str) -> str:
    from mofa.persistence._url import mask_url

    return mask_url(text)


def _masked(value: Any, key: str = "") -> Any:
    """``value`` with secrets replaced by ``****`` (for ``repr``)."""
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(item, key) for item in value]
    if _SECRET_KEY_RE.search(key) and value not in (None, ""):
        return "****"
    if isinstance(value, str):
        return _mask_text(value)
    return value


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> MofaConfig:
    """Read and check an ``agent.yml``; every problem is one :class:`ConfigError` sentence."""
    config_path = Path(path).expanduser()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Configuration file not found: {config_path}.") from None
    except IsADirectoryError:
        raise ConfigError(f"{config_path} is a directory, not a configuration file.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {config_path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{config_path} is not UTF-8 text.") from None
    try:
        document = _yaml.load(text)
    except _yaml.DocumentTooComplexError as exc:
        raise ConfigError(f"{config_path} {exc}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{config_path} is not valid YAML{at}; check its indentation.") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{config_path} must hold a mapping of sections (agent, persistence…).")
    variables = environment(config_path, environ)
    expanded, missing = _expand_tree(document, variables, ())
    return _build(config_path, expanded, missing)


def _expand_tree(
    value: Any, variables: Mapping[str, str], key_path: tuple[str, ...]
) -> tuple[Any, dict[tuple[str, ...], tuple[str, ...]]]:
    missing: dict[tuple[str, ...], tuple[str, ...]] = {}
    if isinstance(value, str):
        text, names = expand_variables(value, variables)
        if names:
            missing[key_path] = names
        return text, missing
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            result[key], inner = _expand_tree(item, variables, (*key_path, str(key)))
            missing.update(inner)
        return result, missing
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            expanded, inner = _expand_tree(item, variables, (*key_path, str(index)))
            items.append(expanded)
            missing.update(inner)
        return items, missing
    return value, missing


def _section(document: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    section = document.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: the '{name}' section must be a mapping.")
    return section


def _optional_str(
    section: Mapping[str, Any], key: str, where: str, path: Path | None
) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{path}: {where}.{key} must be a string.")
    return str(value)


def _bool(section: dict[str, Any], key: str, default: bool, where: str, path: Path) -> bool:
    value = section.get(key, default)
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: {where}.{key} must be true or false, not {value!r}.")
    return value


def _check_keys(section: Mapping[Any, Any], key_path: tuple[str, ...], path: Path) -> None:
    """Refuse a key the section does not know, naming the closest one it does."""
    known = _KNOWN_KEYS[key_path]
    where = ".".join(key_path)
    for key in section:
        name = str(key)
        if name in known:
            continue
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.75)
        if not key_path:
            if not close:
                continue  # another tool's section: kept in ``raw`` for extensions
            raise ConfigError(f"{path}: unknown section {name!r}; did you mean {close[0]!r}?")
        hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(known)}."
        raise ConfigError(f"{path}: unknown key {name!r} in {where}; {hint}")


def _build(
    path: Path, document: dict[str, Any], missing: dict[tuple[str, ...], tuple[str, ...]]
) -> MofaConfig:
    _check_keys(document, (), path)
    sections = {name: _section(document, name, path) for name in _KNOWN_KEYS[()]}
    for name, section in sections.items():
        _check_keys(section, (name,), path)
    agent, persistence, session, llm = sections.values()

    database: DatabaseSection | None = None
    raw_database = persistence.get("database")
    if raw_database is not None:
        if isinstance(raw_database, str):
            raw_database = {"url": raw_database}
        if not isinstance(raw_database, dict):
            raise ConfigError(f"{path}: persistence.database must be a mapping with a url.")
        _check_keys(raw_database, ("persistence", "database"), path)
        database_type = _optional_str(raw_database, "type", "persistence.database", path)
        if database_type is not None and _scheme_backend(database_type) is None:
            # Any URL scheme a backend answers to (the registry's records).
            from mofa.persistence._registry import BACKENDS

            types = (scheme for record in BACKENDS.values() for scheme in record.schemes)
            raise ConfigError(
                f"{path}: persistence.database.type {database_type!r} is unknown; use one of: "
                f"{', '.join(types)}."
            )
        names = tuple(
            name
            for key_path, found in missing.items()
            if key_path[:2] == ("persistence", "database")
            for name in found
        )
        database = DatabaseSection(
            type=None if database_type is None else database_type.lower(),
            url=_optional_str(raw_database, "url", "persistence.database", path),
            path=_optional_str(raw_database, "path", "persistence.database", path),
            missing=names,
            source=path,
        )

    ttl = session.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise ConfigError(
            f"{path}: session.ttl_seconds must be a positive whole number of seconds."
        )

    return MofaConfig(
        path=path,
        agent=AgentSection(
            id=_optional_str(agent, "id", "agent", path),
            name=_optional_str(agent, "name", "agent", path),
            description=_optional_str(agent, "description", "agent", path),
        ),
        persistence=PersistenceSection(
            enabled=_bool(persistence, "enabled", True, "persistence", path), database=database
        ),
        session=SessionSection(
            persist=_bool(session, "persist", True, "session", path), ttl_seconds=ttl
        ),
        llm=llm,
        raw=document,
        missing=missing,
    )
