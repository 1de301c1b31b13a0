"""The console script: uvicorn configuration, argument handling, and a real
process started the way an operator starts it."""

from devstack.processes import ManagedProcess, free_port
from eduhub_alerts_sidecar import cli
from eduhub_alerts_sidecar.ws_protocol import AlertsWebSocketProtocol
from eduhub_alerts_sidecar.settings import Settings

import httpx
import logging
import pytest
import sys


SECRET = "c" * 40


def test_uvicorn_config_serves_websockets_with_the_hub_protocol():
    settings = Settings(alerts_secret=SECRET, port=9123, log_level="warning")
    config = cli.uvicorn_config(settings)
    assert config.app == "eduhub_alerts_sidecar.app:create_app"
    assert config.factory is True
    assert (config.host, config.port) == ("127.0.0.1", 9123)
    config.load()
    # The WebSocket limits (size, heartbeat, no compression) live in that
    # protocol and come from the settings; test_sidecar_ws_* check them on sockets.
    assert config.ws_protocol_class is AlertsWebSocketProtocol
    assert config.proxy_headers is False
    assert config.log_level == "warning"


def test_uvicorn_config_accepts_an_app_object():
    settings = Settings(alerts_secret=SECRET)
    sentinel = object()
    config = cli.uvicorn_config(settings, sentinel)
    assert config.app is sentinel and config.factory is False


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_query_string_tokens_are_redacted_from_logs():
    cli.uvicorn_config(Settings(alerts_secret=SECRET))
    logger = logging.getLogger("uvicorn.error")
    handler = ListHandler()
    logger.addHandler(handler)
    try:
        logger.warning(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/ws?token=eyJ.secret.sig&x=1"
        )
        logger.warning("no token here: %s", 42)
    finally:
        logger.removeHandler(handler)
    assert handler.messages == [
        '127.0.0.1:5 - "WebSocket /ws?token=[redacted]&x=1" [accepted]',
        "no token here: 42",
    ]


def test_redaction_filter_is_installed_once():
    settings = Settings(alerts_secret=SECRET)
    cli.uvicorn_config(settings)
    cli.uvicorn_config(settings)
    filters = logging.getLogger("uvicorn.error").filters
    assert sum(isinstance(f, cli.RedactTokens) for f in filters) == 1


def test_command_line_overrides_host_and_port(monkeypatch):
    captured = {}

    def fake_run(server):
        captured["config"] = server.config

    monkeypatch.setattr(cli.uvicorn.Server, "run", fake_run)
    monkeypatch.setattr(cli, "configure_logging", lambda level, log_format="text": captured.setdefault("level", level))
    monkeypatch.setenv("EDUHUB_PORT", "9001")
    cli.main(["--host", "0.0.0.0", "--port", "9002"])
    assert (captured["config"].host, captured["config"].port) == ("0.0.0.0", 9002)
    assert captured["level"] == "info"


def test_invalid_configuration_exits_with_a_message_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("EDUHUB_ALERTS_SECRET", "short-secret-value")
    with pytest.raises(SystemExit) as info:
        cli.main([])
    message = str(info.value.code)
    assert "EDUHUB_ALERTS_SECRET must be at least 32 characters" in message
    assert "short-secret-value" not in message


def test_configure_logging_maps_trace_to_debug(monkeypatch):
    calls = {}
    monkeypatch.setattr(cli.logging, "basicConfig", lambda **kw: calls.update(kw))
    cli.configure_logging("trace")
    assert calls["level"] == logging.DEBUG
    cli.configure_logging("warning")
    assert calls["level"] == logging.WARNING


def test_python_dash_m_starts_a_sidecar_that_answers(tmp_path, redis_url):
    port = free_port()
    process = ManagedProcess(
        "sidecar",
        [sys.executable, "-m", "eduhub_alerts_sidecar", "--port", str(port)],
        tmp_path / "sidecar.log",
        env={"EDUHUB_REDIS_URL": redis_url, "EDUHUB_LOG_LEVEL": "info"},
    )
    try:
        process.wait_for_port(port, timeout=20)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, trust_env=False, timeout=5) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").json() == {"status": "ready"}
    finally:
        process.stop()
    # uvicorn re-raises the SIGTERM after its graceful shutdown, hence -15.
    log = process.tail(200)
    assert "Application shutdown complete" in log, log
    assert "Traceback" not in log, log


def test_module_entry_point_runs_the_cli(monkeypatch):
    import runpy

    called = []
    monkeypatch.setattr(cli, "main", lambda: called.append(True))
    runpy.run_module("eduhub_alerts_sidecar", run_name="__main__")
    assert called == [True]


def test_json_log_lines_carry_level_logger_message_and_exception(capsys):
    import json as json_module
    import logging

    record = logging.LogRecord("eduhub_alerts_sidecar.slack_delivery", logging.WARNING,
                               __file__, 1, "dead-lettered %s", ("1-0",), None)
    try:
        raise RuntimeError("slack down")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    line = json_module.loads(cli.JsonLogFormatter().format(record))
    assert line["level"] == "warning"
    assert line["logger"] == "eduhub_alerts_sidecar.slack_delivery"
    assert line["message"] == "dead-lettered 1-0"
    assert "RuntimeError: slack down" in line["exception"]
    assert line["time"].endswith("+00:00")


def test_json_mode_routes_uvicorn_through_the_json_handler(make_settings):
    import logging

    settings = make_settings(log_format="json")
    config = cli.uvicorn_config(settings)
    assert config.log_config is None  # uvicorn adds no text handlers of its own
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        cli.configure_logging("info", "json")
        assert any(isinstance(h.formatter, cli.JsonLogFormatter) for h in root.handlers)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
