"""`qml config check`: every problem of the configuration, collected in one pass."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from qml_cli.core.settings import SPECS, Settings

PLACEHOLDERS = (
    "your-super-secret-key",
    "changeme",
    "change-me",
    "secret",
    "password",
    "your-secret",
    "example",
    "xxx",
    "todo",
    "placeholder",
)
SECRET_MINIMUM_BYTES = {"JWT_SECRET": 32, "ENCRYPTION_KEY": 32}
STRICT_SSLMODES = ("require", "verify-ca", "verify-full")


@dataclass
class Finding:
    setting: str
    level: str  # error, warning, info
    message: str


def fingerprint(secret: str) -> str:
    """Return a short SHA-256 fingerprint that identifies a secret without showing it."""
    import hashlib

    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def display_value(name: str, value: Any) -> str:
    """Return a value fit to print: passwords in URLs masked, secrets fingerprinted."""
    from qml_cli.core.db import mask_url

    spec = next(spec for spec in SPECS if spec.name == name)
    if value is None:
        return ""
    if spec.kind == "secret":
        return f"*** ({fingerprint(str(value))})"
    if spec.kind == "url":
        if name == "REDIS_URL":
            parts = urlsplit(value)
            if parts.password:
                netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
                return parts._replace(netloc=netloc).geturl()
            return value
        return mask_url(value)
    return str(value)


def _is_loopback(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_secrets(settings: Settings) -> list[Finding]:
    findings = []
    for name, minimum in SECRET_MINIMUM_BYTES.items():
        value = settings.values.get(name)
        if value is None:
            continue
        lowered = value.lower()
        if any(
            word == lowered or word in lowered and len(value) < 40
            for word in PLACEHOLDERS
        ):
            findings.append(
                Finding(
                    name,
                    "error",
                    "is a placeholder value; generate one with: "
                    "python -c 'import secrets; "
                    "print(secrets.token_hex(32))'",
                )
            )
        elif len(value.encode()) < minimum:
            findings.append(
                Finding(
                    name,
                    "error",
                    f"is {len(value.encode())} bytes; use at least {minimum}",
                )
            )
    for name in ("SENDGRID_API_KEY", "TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"):
        value = settings.values.get(name)
        if value and value.lower() in PLACEHOLDERS:
            findings.append(Finding(name, "error", "is a placeholder value"))
    return findings


def check_tls(settings: Settings) -> list[Finding]:
    findings = []
    database_url = settings.values.get("DATABASE_URL")
    if database_url and database_url.startswith("postgres"):
        parts = urlsplit(database_url)
        modes = parse_qs(parts.query).get("sslmode", [""])
        if not _is_loopback(parts.hostname) and modes[0] not in STRICT_SSLMODES:
            findings.append(
                Finding(
                    "DATABASE_URL",
                    "warning",
                    f"host {parts.hostname} is not loopback and the URL has no "
                    "sslmode=require (or verify-ca, verify-full)",
                )
            )
    redis_url = settings.values.get("REDIS_URL")
    if redis_url:
        parts = urlsplit(redis_url)
        if not _is_loopback(parts.hostname) and parts.scheme != "rediss":
            findings.append(
                Finding(
                    "REDIS_URL",
                    "warning",
                    f"host {parts.hostname} is not loopback and the URL is not "
                    "rediss:// (TLS)",
                )
            )
    return findings


def check_services(settings: Settings) -> list[Finding]:
    from qml_cli.core.db import get_engine, ping
    from qml_cli.errors import QmlError

    findings = []
    try:
        ping(get_engine(settings.database_url))
    except QmlError as exc:
        findings.append(Finding("DATABASE_URL", "error", str(exc)))
    if settings.values.get("REDIS_URL"):
        from qml_cli.core.cache import ping_redis

        try:
            ping_redis(settings.values["REDIS_URL"])
        except QmlError as exc:
            findings.append(Finding("REDIS_URL", "error", str(exc)))
    return findings


def check(settings: Settings, *, services: bool = True) -> list[Finding]:
    """Return every finding: secrets, TLS, reachability, and unused settings."""
    findings = check_secrets(settings) + check_tls(settings)
    if services:
        findings += check_services(settings)
    for spec in SPECS:
        if spec.used_by is None and settings.sources.get(spec.name) != "default":
            findings.append(
                Finding(spec.name, "info", "is set, but nothing in qml uses it yet")
            )
    return findings
