"""The current time and calendar periods, in one place so that tests can move time.

`now()` returns `QML_FAKE_NOW` (an ISO 8601 instant) when it is set. That variable is
for tests and rehearsals of period ends, and `qml config show` prints it when active.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from qml_cli.errors import InvalidInput


def now() -> dt.datetime:
    """Return the current instant as an aware UTC datetime."""
    fake = os.environ.get("QML_FAKE_NOW")
    if fake:
        return parse_instant(fake, "QML_FAKE_NOW")
    return dt.datetime.now(dt.UTC)


def parse_instant(text: str, name: str = "time") -> dt.datetime:
    """Parse an ISO 8601 date or date-time; naive values are taken as UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"invalid {name} {text!r}.",
            hint="Use ISO 8601, e.g. 2027-03-31 or 2027-03-31T09:00:00+00:00.",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidInput(
            f"invalid {name} {text!r}: the time is out of range.",
            hint="Use a time between the years 1 and 9999.",
        ) from None


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone `name`; raise `InvalidInput` when unknown."""
    try:
        if (
            not name
            or name != name.strip()
            or name.startswith(("/", "."))
            or ".." in name
        ):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = sorted(
            z
            for z in available_timezones()
            if name and name.lower().replace(" ", "_") in z.lower()
        )[:5]
        hint = (
            f"Did you mean: {', '.join(close)}?"
            if close
            else "Use an IANA name such as UTC, Europe/Berlin or America/Sao_Paulo."
        )
        raise InvalidInput(f"unknown time zone {name!r}.", hint=hint) from None


def month_start(instant: dt.datetime, tz_name: str) -> dt.datetime:
    """Return the UTC instant of local midnight on the first of `instant`'s local month."""
    tz = zone(tz_name)
    local = instant.astimezone(tz)
    start = dt.datetime(local.year, local.month, 1, tzinfo=tz)
    return start.astimezone(dt.UTC)


def add_months(start: dt.datetime, tz_name: str, months: int = 1) -> dt.datetime:
    """Return local midnight on the first of the month `months` after `start`'s."""
    tz = zone(tz_name)
    local = start.astimezone(tz)
    index = local.year * 12 + (local.month - 1) + months
    following = dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=tz)
    return following.astimezone(dt.UTC)


def month_period(instant: dt.datetime, tz_name: str) -> tuple[dt.datetime, dt.datetime]:
    """Return (start, end) in UTC of the calendar month containing `instant` in `tz_name`."""
    start = month_start(instant, tz_name)
    return start, add_months(start, tz_name)


def parse_duration(text: str) -> dt.timedelta:
    """Parse durations such as 30d, 12h, 90m, 2w; raise `InvalidInput` otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    raw = text.strip().lower()
    if len(raw) >= 2 and raw[-1] in units and raw[:-1].isdigit() and int(raw[:-1]) > 0:
        return dt.timedelta(seconds=int(raw[:-1]) * units[raw[-1]])
    raise InvalidInput(
        f"invalid duration {text!r}.",
        hint="Use a positive whole number and a unit: s, m, h, d or w (e.g. 30d).",
    )
