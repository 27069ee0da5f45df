"""Structured logging: one JSON object per line, with the same field names everywhere.

Fields: timestamp, level, service, operation, tenant_id, credits_used,
processing_time (ms), success, error, message. Values that look like secrets are
redacted before they are written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys

SERVICE = "qml"
FIELDS = (
    "operation",
    "tenant_id",
    "credits_used",
    "processing_time",
    "success",
    "error",
)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I)
_SECRET_NAMES = (
    "JWT_SECRET",
    "ENCRYPTION_KEY",
    "SENDGRID_API_KEY",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_ACCOUNT_SID",
    "SENTRY_DSN",
)


_configured_secrets: list[str] = []


def redact(text: str) -> str:
    """Mask URL passwords and the values of known secret variables in `text`,
    whether they came from the environment or from the env file."""
    text = _URL_PASSWORD.sub(r"\g<scheme>***@", text)
    secrets = [os.environ.get(name) for name in _SECRET_NAMES] + _configured_secrets
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with the qml field names."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "service": SERVICE,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                document[name] = getattr(record, name)
        if record.exc_info and "error" not in document:
            document["error"] = repr(record.exc_info[1])
        return redact(json.dumps(document, default=str, ensure_ascii=False))


def setup(level: str = "INFO", path: str | None = None) -> None:
    """Send the `qml` logger to stderr, or to `path`, as JSON lines."""
    logger = logging.getLogger("qml")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler: logging.Handler
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def setup_from_settings() -> None:
    """Configure logging from LOG_LEVEL and QML_LOG_FILE, set in the environment or
    the env file. Without LOG_LEVEL the CLI logs warnings and errors only, so that
    interactive output stays readable."""
    from qml_cli.core.settings import load_lenient

    from qml_cli.errors import InvalidInput

    try:
        settings = load_lenient()
    except (InvalidInput, OSError):  # a bad env file is reported by the command
        setup("WARNING")
        return
    level = settings.values["LOG_LEVEL"]
    _configured_secrets[:] = [
        str(settings.values[name])
        for name in _SECRET_NAMES
        if settings.values.get(name)
    ]
    setup(level, settings.extras.get("QML_LOG_FILE") or None)


def get_logger(name: str) -> logging.Logger:
    """Return a child of the `qml` logger."""
    return logging.getLogger(f"qml.{name}")
