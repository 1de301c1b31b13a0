"""Settings from EDUHUB_* variables, secret files and validation messages."""

from pathlib import Path

from eduhub_alerts_sidecar.settings import DEFAULT_ALLOWED_ORIGINS, Settings
from pydantic import ValidationError

import pytest


SECRET = "s" * 32


@pytest.fixture
def clean_env(monkeypatch):
    """No EDUHUB_* variable but the ones a test sets."""
    import os

    for name in list(os.environ):
        if name.startswith("EDUHUB_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_match_the_documented_contract(clean_env):
    clean_env.setenv("EDUHUB_ALERTS_SECRET", SECRET)
    settings = Settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.ws_allowed_origins == list(DEFAULT_ALLOWED_ORIGINS)
    assert (settings.host, settings.port) == ("127.0.0.1", 8090)
    assert settings.stream_key == "eduhub:alerts"
    assert settings.reader_block_ms == 1000
    assert settings.heartbeat_seconds == 25
    assert settings.max_message_bytes == 65536
    assert settings.send_queue_size == 256
    assert settings.token_audience == "eduhub-alerts"
    assert settings.log_level == "info"
    assert settings.proxy_headers is False
    assert settings.stream_maxlen == 100_000
    assert settings.http_post_rate_per_minute == 20
    assert settings.ws_max_subscriptions == 100
    assert settings.ws_max_connections_per_user == 10
    assert (settings.ws_message_rate, settings.ws_message_burst) == (10.0, 10)
    assert settings.ws_rate_limit_strikes == 10


def test_every_setting_is_in_the_readme_table():
    readme = (Path(__file__).parents[2] / "sidecar" / "README.md").read_text()
    missing = [name for name in Settings.model_fields
               if f"| `EDUHUB_{name.upper()}` |" not in readme]
    assert missing == []


def test_every_field_documents_its_variable_and_default():
    for name, field in Settings.model_fields.items():
        assert field.description and f"EDUHUB_{name.upper()}" in field.description, name
        assert "Default" in field.description or "No default" in field.description, name


def test_environment_variables_are_read(clean_env):
    clean_env.setenv("EDUHUB_ALERTS_SECRET", SECRET)
    clean_env.setenv("EDUHUB_REDIS_URL", "redis://redis:6379/2")
    clean_env.setenv("EDUHUB_WS_ALLOWED_ORIGINS", "https://a.example, https://b.example/ ,")
    clean_env.setenv("EDUHUB_PORT", "9000")
    clean_env.setenv("EDUHUB_LOG_LEVEL", "DEBUG")
    settings = Settings()
    assert settings.redis_url == "redis://redis:6379/2"
    assert settings.ws_allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.port == 9000
    assert settings.log_level == "debug"


def test_missing_secret_is_a_validation_error_naming_it(clean_env):
    with pytest.raises(ValidationError, match="alerts_secret"):
        Settings()


def test_short_secret_is_refused_without_echoing_it(clean_env):
    clean_env.setenv("EDUHUB_ALERTS_SECRET", "tooshort-but-secret")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "EDUHUB_ALERTS_SECRET must be at least 32 characters" in str(info.value)
    assert "tooshort-but-secret" not in str(info.value)


def test_secret_is_read_from_a_file(clean_env, tmp_path):
    path = tmp_path / "alerts_secret"
    path.write_text(SECRET + "\n")
    clean_env.setenv("EDUHUB_ALERTS_SECRET_FILE", str(path))
    assert Settings().alerts_secret.get_secret_value() == SECRET


def test_secret_is_read_from_a_secrets_directory(clean_env, tmp_path):
    (tmp_path / "eduhub_alerts_secret").write_text(SECRET)
    clean_env.setenv("EDUHUB_SECRETS_DIR", str(tmp_path))
    assert Settings().alerts_secret.get_secret_value() == SECRET


def test_secret_variable_wins_over_the_file(clean_env, tmp_path):
    path = tmp_path / "alerts_secret"
    path.write_text("f" * 40)
    clean_env.setenv("EDUHUB_ALERTS_SECRET_FILE", str(path))
    clean_env.setenv("EDUHUB_ALERTS_SECRET", SECRET)
    assert Settings().alerts_secret.get_secret_value() == SECRET


def test_secret_never_appears_in_repr_or_dump(clean_env):
    settings = Settings(alerts_secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_unknown_log_level_is_refused(clean_env):
    with pytest.raises(ValidationError, match="EDUHUB_LOG_LEVEL"):
        Settings(alerts_secret=SECRET, log_level="loud")


def test_reader_batch_may_not_exceed_the_send_queue(clean_env):
    with pytest.raises(ValidationError, match="EDUHUB_READER_BATCH_SIZE"):
        Settings(alerts_secret=SECRET, reader_batch_size=300, send_queue_size=256)


def test_redis_socket_timeout_is_longer_than_the_xread_block(clean_env):
    settings = Settings(alerts_secret=SECRET, reader_block_ms=10_000)
    assert settings.redis_socket_timeout > 10


@pytest.mark.parametrize(
    "allowed, origin, expected",
    [
        (["http://localhost:8080"], None, True),
        (["http://localhost:8080"], "http://localhost:8080", True),
        (["http://localhost:8080"], "http://localhost:8080/", True),
        (["http://localhost:8080"], "http://localhost:8081", False),
        (["http://localhost:8080"], "null", False),
        (["*"], "https://anything.example", True),
    ],
)
def test_origin_allowed(clean_env, allowed, origin, expected):
    settings = Settings(alerts_secret=SECRET, ws_allowed_origins=allowed)
    assert settings.origin_allowed(origin) is expected
