"""Typed settings from the environment, then a `.env` file, then defaults.

`load_settings` validates every variable and raises one `InvalidInput` that lists
every problem at once, so an operator fixes a broken configuration in one pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qml_cli.errors import InvalidInput

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class SettingSpec:
    """One environment variable: its type, default, bounds and purpose."""

    name: str
    kind: str  # str, int, float, bool, url, secret, choice
    default: Any
    help: str
    used_by: str | None = None  # None while no command reads the setting yet
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "DATABASE_URL",
        "url",
        None,
        "SQLAlchemy URL of the database; empty means the embedded SQLite file",
        used_by="every command that stores data",
    ),
    SettingSpec(
        "REDIS_URL",
        "url",
        None,
        "Redis URL for cache, locks and rate limits; empty means the database",
        used_by="insight cache, health",
    ),
    SettingSpec(
        "ML_CREDITS_ENABLED",
        "bool",
        True,
        "charge ML credits; false records operations at cost 0",
        used_by="credits consume, predict run, insight run",
    ),
    SettingSpec(
        "ML_DEFAULT_PLAN",
        "str",
        "standard",
        "plan given to new tenants without --plan",
        used_by="tenants create",
    ),
    SettingSpec(
        "ML_QUANTUM_OPTIMIZATION",
        "bool",
        False,
        "solve subset selections with QAOA beside exact enumeration",
        used_by="forecast ensembles, insight selection",
    ),
    SettingSpec(
        "ML_CACHE_TTL",
        "int",
        3600,
        "seconds a stored insight is reused for the same input",
        minimum=0,
        maximum=30 * 86400,
        used_by="insight run",
    ),
    SettingSpec(
        "ML_MAX_CONCURRENT",
        "int",
        2,
        "worker processes for predict run --due",
        minimum=1,
        maximum=256,
        used_by="predict run",
    ),
    SettingSpec(
        "ML_TIMEOUT",
        "int",
        30000,
        "milliseconds one prediction or insight may take; also the credit hold timeout",
        minimum=100,
        maximum=3_600_000,
        used_by="predict run, insight run",
    ),
    SettingSpec(
        "QUANTUM_ALGORITHMS_ENABLED",
        "bool",
        True,
        "run the quantum engine; false runs only the classical baselines",
        used_by="quantum commands, selections",
    ),
    SettingSpec(
        "QAOA_ITERATIONS",
        "int",
        100,
        "maximum optimiser iterations per QAOA depth step",
        minimum=1,
        maximum=100_000,
        used_by="quantum qaoa, quantum maxcut",
    ),
    SettingSpec(
        "GROVER_THRESHOLD",
        "int",
        10,
        "minimum qubits of a search space for which Grover search replaces a scan",
        minimum=1,
        maximum=40,
        used_by="quantum grover",
    ),
    SettingSpec(
        "SQD_CONFIDENCE",
        "float",
        0.5,
        "minimum probability or confidence below which a result is marked low-confidence",
        minimum=0.0,
        maximum=1.0,
        used_by="quantum results, insights",
    ),
    SettingSpec(
        "AUTO_PREDICTIONS_ENABLED",
        "bool",
        True,
        "let predict run --due run scheduled predictions",
        used_by="predict run",
    ),
    SettingSpec(
        "MONTHLY_RESET_ENABLED",
        "bool",
        True,
        "let credits reset-monthly change balances",
        used_by="credits reset-monthly",
    ),
    SettingSpec(
        "SCHEDULER_INTERVAL",
        "int",
        60000,
        "milliseconds between schedule checks of scheduler run",
        minimum=1000,
        maximum=86_400_000,
        used_by="scheduler run",
    ),
    SettingSpec(
        "JWT_SECRET", "secret", None, "secret that signs API tokens; at least 32 bytes"
    ),
    SettingSpec(
        "ENCRYPTION_KEY",
        "secret",
        None,
        "key that encrypts backups (AES-256-GCM); at least 32 bytes",
        used_by="backup create, backup verify, backup restore",
    ),
    SettingSpec("SENDGRID_API_KEY", "secret", None, "SendGrid key for e-mail alerts"),
    SettingSpec("TWILIO_ACCOUNT_SID", "secret", None, "Twilio account for SMS alerts"),
    SettingSpec("TWILIO_AUTH_TOKEN", "secret", None, "Twilio token for SMS alerts"),
    SettingSpec(
        "LOG_LEVEL",
        "choice",
        "WARNING",
        "minimum level of the JSON logs",
        choices=LOG_LEVELS,
        used_by="every command",
    ),
    SettingSpec("SENTRY_DSN", "secret", None, "Sentry DSN for error reports"),
)

SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class Settings:
    """Validated settings, with the source of each value in `sources`."""

    values: dict[str, Any]
    sources: dict[str, str]
    env_file: Path | None = None
    home: Path = field(default_factory=lambda: default_home())
    # "NAME: reason" for each value that failed validation (non-strict loads only);
    # such a setting has its default in `values`.
    problems: tuple[str, ...] = ()
    # Variables outside SPECS read from the env file, such as QML_LOG_FILE.
    extras: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "values")
        key = name.upper()
        if key in values:
            return values[key]
        raise AttributeError(name)

    @property
    def database_url(self) -> str:
        return self.values["DATABASE_URL"] or f"sqlite:///{self.home / 'qml.sqlite3'}"

    @property
    def embedded(self) -> bool:
        return not self.values["DATABASE_URL"]


def default_home() -> Path:
    """Return the data folder: `QML_HOME`, else the per-user data directory."""
    if os.environ.get("QML_HOME"):
        return Path(os.environ["QML_HOME"]).expanduser()
    from platformdirs import user_data_path

    return user_data_path("qml", appauthor=False)


def _parse(spec: SettingSpec, raw: str) -> Any:
    text = raw.strip()
    if spec.kind in ("str", "url", "secret"):
        if text:
            return text
        return spec.default
    if spec.kind == "bool":
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if spec.kind == "choice":
        if text.upper() not in spec.choices:
            raise ValueError(f"expected one of {', '.join(spec.choices)}, got {raw!r}")
        return text.upper()
    number: float
    try:
        number = int(text) if spec.kind == "int" else float(text)
    except ValueError:
        raise ValueError(
            f"expected {'an integer' if spec.kind == 'int' else 'a number'}, "
            f"got {raw!r}"
        ) from None
    if spec.kind == "float" and number != number:
        raise ValueError("expected a number, got NaN")
    if spec.minimum is not None and number < spec.minimum:
        raise ValueError(f"{number} is below the minimum {spec.minimum:g}")
    if spec.maximum is not None and number > spec.maximum:
        raise ValueError(f"{number} is above the maximum {spec.maximum:g}")
    return number


def read_env_file(path: Path) -> dict[str, str]:
    """Read a dotenv file; a missing explicit file is an error."""
    from dotenv import dotenv_values

    if not path.is_file():
        raise InvalidInput(
            f"env file not found: {path}.", hint="Pass an existing file to --env-file."
        )
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if cache_key not in _env_file_cache:
        # python-dotenv warns once per unparsable line; reading once keeps it to one.
        _env_file_cache[cache_key] = {
            key: value
            for key, value in dotenv_values(path).items()
            if value is not None
        }
    return dict(_env_file_cache[cache_key])


_env_file_cache: dict[tuple[str, int, int], dict[str, str]] = {}
EXTRA_VARIABLES = ("QML_LOG_FILE",)


def load_settings(
    env_file: Path | None = None,
    environ: dict[str, str] | None = None,
    *,
    strict: bool = True,
) -> Settings:
    """Load and validate every setting; raise `InvalidInput` listing all problems,
    or with `strict=False` return them in `Settings.problems`."""
    environ = dict(os.environ if environ is None else environ)
    file_values: dict[str, str] = {}
    file_label = None
    if env_file is not None:
        file_values = read_env_file(env_file)
        file_label = f"env file {env_file}"
    elif Path(".env").is_file():
        env_file = Path(".env")
        file_values = read_env_file(env_file)
        file_label = "env file .env"

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for spec in SPECS:
        if spec.name in environ:
            raw, source = environ[spec.name], "environment"
        elif spec.name in file_values:
            raw, source = file_values[spec.name], file_label or "env file"
        else:
            values[spec.name], sources[spec.name] = spec.default, "default"
            continue
        try:
            values[spec.name] = _parse(spec, raw)
        except ValueError as error:
            problems.append(f"{spec.name}: {error}")
            values[spec.name] = spec.default
        sources[spec.name] = source

    if problems and strict:
        raise InvalidInput(
            "invalid settings:\n  " + "\n  ".join(problems),
            hint="\nFix these variables in the environment or the env file.",
        )
    extras = {
        name: environ.get(name) or file_values.get(name, "")
        for name in EXTRA_VARIABLES
        if environ.get(name) or file_values.get(name)
    }
    return Settings(
        values=values,
        sources=sources,
        env_file=env_file,
        problems=tuple(problems),
        extras=extras,
    )


_current: Settings | None = None
_env_file: Path | None = None


def configure(env_file: Path | None) -> None:
    """Set the env file that later `get_settings` calls read."""
    global _current, _env_file
    _env_file = env_file
    _current = None


def load_lenient() -> Settings:
    """Load the settings of this process without raising on invalid values."""
    return load_settings(_env_file, strict=False)


def get_settings() -> Settings:
    """Return the process-wide settings, loading them on first use."""
    global _current
    if _current is None:
        _current = load_settings(_env_file)
    return _current


def reset_settings() -> None:
    """Forget the loaded settings so the next call reads the environment again."""
    global _current
    _current = None
