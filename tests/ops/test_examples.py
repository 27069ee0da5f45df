"""The files in examples/ stay in step with the settings and the schedule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qml_cli.core import scheduler, settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_env_example_documents_every_setting():
    text = (EXAMPLES / ".env.example").read_text()

    names = set(re.findall(r"^([A-Z_]+)=", text, flags=re.M))

    assert names == {spec.name for spec in settings.SPECS}


def test_env_example_is_valid(tmp_path):
    loaded = settings.load_settings(EXAMPLES / ".env.example", environ={})

    assert loaded.sources["LOG_LEVEL"].startswith("env file")


def test_crontab_example_matches_cron_print():
    expected = scheduler.crontab(
        "/etc/qml/qml.env",
        command=["/opt/qml/bin/qml"],
        log_file="/var/log/qml/cron.log",
    )

    assert (EXAMPLES / "crontab").read_text() == expected


def _calendar(expression: str) -> str:
    minute, hour = expression.split()[:2]
    hour = "*" if hour == "*" else f"{int(hour):02d}"
    return f"*-*-* {hour}:{int(minute):02d}:00 UTC"


@pytest.mark.parametrize("job", scheduler.SCHEDULE, ids=lambda job: job.name)
def test_systemd_units_follow_schedule(job):
    service = (EXAMPLES / "systemd" / f"qml-{job.name}.service").read_text()
    timer = (EXAMPLES / "systemd" / f"qml-{job.name}.timer").read_text()

    assert f"--env-file /etc/qml/qml.env {' '.join(job.arguments)}\n" in service
    assert "SuccessExitStatus=5" in service
    assert f"OnCalendar={_calendar(job.schedule)}\n" in timer
    assert "Persistent=true" in timer


def test_kubernetes_cronjobs_follow_schedule():
    yaml = pytest.importorskip("yaml")
    documents = list(
        yaml.safe_load_all((EXAMPLES / "kubernetes" / "cronjobs.yaml").read_text())
    )

    found = {}
    for document in documents:
        spec = document["spec"]
        container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        found[document["metadata"]["name"]] = (
            spec["schedule"],
            tuple(container["args"]),
            spec["concurrencyPolicy"],
        )

    assert found == {
        f"qml-{job.name}": (job.schedule, job.arguments, "Forbid")
        for job in scheduler.SCHEDULE
    }


def test_dockerfile_runs_as_non_root_with_health_check():
    text = (EXAMPLES / "Dockerfile").read_text()

    assert re.search(r"^FROM python:3\.11-slim", text, flags=re.M)
    assert "\nUSER qml\n" in text
    assert 'CMD ["qml", "health"]' in text
