"""agent.yml parsing: the seeds' format, ${VAR} expansion, .env, and one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mofa.config import ConfigError, load_config, read_dotenv

SEED_CONFIG = """\
agent:
  id: my-agent
  name: My Agent

# Database configuration
persistence:
  enabled: true

  # PostgreSQL
  database:
    type: postgres
    url: ${DATABASE_URL}

  # Or SQLite
  # database:
  #   type: sqlite
  #   path: ~/.local/share/mofa/mofa.db

# Session persistence
session:
  persist: true
  ttl_seconds: 86400  # 24 hours
"""


def write(tmp_path: Path, text: str, name: str = "agent.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_config_with_environment(tmp_path: Path) -> None:
    path = write(tmp_path, SEED_CONFIG)
    config = load_config(path, environ={"DATABASE_URL": "postgresql://user:pass@localhost/mofa"})
    assert config.agent.id == "my-agent"
    assert config.agent.name == "My Agent"
    assert config.persistence.enabled is True
    assert config.persistence.database_url() == "postgresql://user:pass@localhost/mofa"
    assert config.session.persist is True
    assert config.session.ttl_seconds == 86400


def test_dotenv_beside_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, SEED_CONFIG)
    write(tmp_path, "# secrets\nexport DATABASE_URL='postgres://h/x'\nOTHER=1 # note\n", ".env")
    assert load_config(path, environ={}).persistence.database_url() == "postgres://h/x"
    # The environment wins over .env.
    config = load_config(path, environ={"DATABASE_URL": "postgresql://h/y"})
    assert config.persistence.database_url() == "postgresql://h/y"
    assert read_dotenv(tmp_path / ".env") == {"DATABASE_URL": "postgres://h/x", "OTHER": "1"}


def test_dotenv_quotes_and_comments(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "\n".join(
            [
                'A="sqlite://../s.db" # the shared database',
                "export B='single quoted'   # with a comment",
                'C="has # inside"',
                "D=bare value # comment",
                "E=bare#not-a-comment",
                "G=",
            ]
        ),
        encoding="utf-8",
    )
    assert read_dotenv(tmp_path / ".env") == {
        "A": "sqlite://../s.db",
        "B": "single quoted",
        "C": "has # inside",
        "D": "bare value",
        "E": "bare#not-a-comment",
        "G": "",
    }


def test_unset_variable_is_an_error_only_when_used(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), environ={})
    with pytest.raises(ConfigError, match=r"\$\{DATABASE_URL\}, which is not set"):
        config.persistence.database_url()
    disabled = SEED_CONFIG.replace("enabled: true", "enabled: false")
    config = load_config(write(tmp_path, disabled), environ={})
    assert config.persistence.database_url() is None


def test_sqlite_path_with_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    text = "persistence:\n  database:\n    type: sqlite\n    path: ~/.local/share/mofa/mofa.db\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.persistence.database_url() == f"sqlite://{tmp_path}/.local/share/mofa/mofa.db"


def test_default_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "agent:\n  id: a\n"), environ={})
    assert config.persistence.database_url() is None
    assert config.session.ttl_seconds is None
    assert config.llm == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("persistence: [1, 2]\n", "'persistence' section must be a mapping"),
        ("agent: {id: a\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping of sections"),
        ("persistence:\n  database:\n    type: oracle\n    url: x\n", "unknown"),
        ("session:\n  ttl_seconds: -5\n", "ttl_seconds"),
        ("persistence:\n  enabled: maybe\n", "true or false"),
        ("persistence:\n  database:\n    type: postgres\n", "needs a url"),
    ],
)
def test_bad_configs_give_one_sentence(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={}).persistence.database_url()
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yml")


def test_sqlite_path_with_url_special_characters(tmp_path: Path) -> None:
    from mofa.persistence import parse_url

    odd = tmp_path / "we?ird #dir%20"
    text = f"persistence:\n  database:\n    type: sqlite\n    path: '{odd}/m.db'\n"
    url = load_config(write(tmp_path, text), environ={}).persistence.database_url()
    assert url is not None
    assert parse_url(url).path == f"{odd}/m.db"


def test_a_relative_path_is_relative_to_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cfg").mkdir()
    sqlite = "persistence:\n  database:\n    type: sqlite\n    path: ../s.db\n"
    path = write(tmp_path / "cfg", sqlite)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    url = load_config(path, environ={}).persistence.database_url()
    assert url == f"sqlite://{tmp_path / 's.db'}"
    files = "persistence:\n  database:\n    type: file\n    path: data\n"
    url = load_config(write(tmp_path / "cfg", files), environ={}).persistence.database_url()
    assert url == f"file://{tmp_path / 'cfg' / 'data'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "persistance:\n  enabled: true\n",
            "unknown section 'persistance'; did you mean 'persistence'?",
        ),
        ("llm:\n  modle: gpt-4o\n", "unknown key 'modle' in llm; did you mean 'model'?"),
        (
            "session:\n  ttl: 60\n",
            "unknown key 'ttl' in session; use one of: persist, ttl_seconds.",
        ),
        (
            "persistence:\n  database:\n    typ: sqlite\n    path: x.db\n",
            "unknown key 'typ' in persistence.database; did you mean 'type'?",
        ),
        ("agent:\n  idd: a\n", "unknown key 'idd' in agent; did you mean 'id'?"),
    ],
)
def test_an_unknown_key_is_one_sentence_naming_the_closest(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: {message}"


def test_another_tools_top_level_section_is_kept(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "agent:\n  id: a\ntools:\n  - search\n"), environ={})
    assert config.raw["tools"] == ["search"]


def test_a_type_that_contradicts_the_url_is_one_sentence(tmp_path: Path) -> None:
    text = "persistence:\n  database:\n    type: mysql\n    url: sqlite://./m.db\n"
    config = load_config(write(tmp_path, text), environ={})
    with pytest.raises(ConfigError, match=r"type is mysql but its url is a sqlite: URL"):
        config.persistence.database_url()
    same = "persistence:\n  database:\n    type: mariadb\n    url: mysql://root@h/m\n"
    assert load_config(write(tmp_path, same), environ={}).persistence.database_url()


def test_repr_masks_passwords_and_api_keys(tmp_path: Path) -> None:
    text = (
        "persistence:\n  database:\n    url: postgres://mofa:db-pass-123@localhost/mofa\n"
        "llm:\n  api_key: sk-live-abcdef123456\n  base_url: http://u:url-pass-9@h/v1\n"
    )
    shown = repr(load_config(write(tmp_path, text), environ={}))
    for secret in ("db-pass-123", "sk-live-abcdef123456", "url-pass-9"):
        assert secret not in shown
    assert "postgres://mofa:****@localhost/mofa" in shown
    assert "http://u:****@h/v1" in shown


def test_repr_masks_a_password_given_as_a_url_parameter(tmp_path: Path) -> None:
    text = "persistence:\n  database:\n    url: mysql://localhost/mofa?pwd=param-pass-7\n"
    shown = repr(load_config(write(tmp_path, text), environ={}))
    assert "param-pass-7" not in shown
    assert "mysql://localhost/mofa?pwd=****" in shown
