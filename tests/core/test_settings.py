"""Settings: sources, validation of every problem at once, masking, `config check`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core.settings import load_settings
from qml_cli.errors import InvalidInput

runner = CliRunner()


def test_defaults_apply_without_environment():
    settings = load_settings(environ={})
    assert settings.values["ML_CACHE_TTL"] == 3600
    assert settings.sources["ML_CACHE_TTL"] == "default"
    assert settings.embedded is True


def test_environment_beats_env_file(tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text("ML_CACHE_TTL=10\nQAOA_ITERATIONS=7\n")
    settings = load_settings(env_file, environ={"ML_CACHE_TTL": "20"})
    assert settings.values["ML_CACHE_TTL"] == 20
    assert settings.sources["ML_CACHE_TTL"] == "environment"
    assert settings.values["QAOA_ITERATIONS"] == 7
    assert settings.sources["QAOA_ITERATIONS"] == f"env file {env_file}"


def test_every_invalid_value_is_reported_at_once():
    environ = {
        "ML_CACHE_TTL": "soon",
        "SQD_CONFIDENCE": "1.5",
        "ML_CREDITS_ENABLED": "maybe",
        "LOG_LEVEL": "LOUD",
        "ML_MAX_CONCURRENT": "0",
    }
    with pytest.raises(InvalidInput) as raised:
        load_settings(environ=environ)
    message = str(raised.value)
    for name in environ:
        assert name in message


def test_missing_env_file_is_an_error(tmp_path):
    with pytest.raises(InvalidInput, match="env file not found"):
        load_settings(tmp_path / "absent.env", environ={})


def test_nan_float_is_rejected():
    with pytest.raises(InvalidInput, match="SQD_CONFIDENCE"):
        load_settings(environ={"SQD_CONFIDENCE": "nan"})


def test_config_show_masks_secrets(monkeypatch):
    monkeypatch.setenv(
        "DATABASE_URL", "postgresql://qml:hunter2hunter2@db.internal/qml"
    )
    monkeypatch.setenv("JWT_SECRET", "s" * 40)
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0
    assert "hunter2hunter2" not in result.output
    assert "s" * 40 not in result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["DATABASE_URL"]["value"] == "postgresql://qml:***@db.internal/qml"
    assert rows["JWT_SECRET"]["value"].startswith("*** (sha256:")


def test_invalid_setting_exits_2_naming_it(monkeypatch):
    monkeypatch.setenv("ML_TIMEOUT", "-5")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "ML_TIMEOUT" in result.output


@pytest.mark.parametrize("secret", ["your-super-secret-key", "changeme", "short"])
def test_config_check_rejects_weak_jwt_secret(sqlite_engine, monkeypatch, secret):
    monkeypatch.setenv("JWT_SECRET", secret)
    result = runner.invoke(app, ["config", "check", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert [f["setting"] for f in report["findings"] if f["level"] == "error"] == [
        "JWT_SECRET"
    ]


def test_config_check_warns_on_remote_url_without_tls(monkeypatch):
    from qml_cli.core.config_check import check_tls

    environ = {
        "DATABASE_URL": "postgresql://u@db.example.com/qml",
        "REDIS_URL": "redis://cache.example.com:6379/0",
    }
    findings = check_tls(load_settings(environ=environ))
    assert [(f.setting, f.level) for f in findings] == [
        ("DATABASE_URL", "warning"),
        ("REDIS_URL", "warning"),
    ]


def test_config_check_accepts_tls_urls():
    from qml_cli.core.config_check import check_tls

    environ = {
        "DATABASE_URL": "postgresql://u@db.example.com/qml?sslmode=verify-full",
        "REDIS_URL": "rediss://cache.example.com:6380/0",
    }
    assert check_tls(load_settings(environ=environ)) == []


def test_config_check_unreachable_redis_is_an_error(sqlite_engine, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    result = runner.invoke(app, ["config", "check", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert [f["setting"] for f in report["findings"] if f["level"] == "error"] == [
        "REDIS_URL"
    ]


def test_config_check_passes_with_reachable_services(
    sqlite_engine, redis_url, monkeypatch
):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("JWT_SECRET", "0123456789abcdef0123456789abcdef-x")
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output


def test_embedded_database_created_on_first_use(tmp_path):
    result = runner.invoke(app, ["db", "migrate"])
    assert result.exit_code == 0
    assert (tmp_path / "home" / "qml.sqlite3").is_file()


def test_log_lines_are_json_with_redaction(capsys, monkeypatch):
    import logging

    from qml_cli.core import logs

    monkeypatch.setenv("JWT_SECRET", "topsecretvalue1234")
    logs.setup("INFO")
    logs.get_logger("test").info(
        "connecting to postgresql://u:pw123456@h/db with topsecretvalue1234",
        extra={"operation": "prediction", "tenant_id": 7, "credits_used": 1},
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    document = json.loads(line)
    assert document["operation"] == "prediction"
    assert document["service"] == "qml"
    assert "pw123456" not in line
    assert "topsecretvalue1234" not in line
    logging.getLogger("qml").handlers.clear()
