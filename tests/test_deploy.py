"""The Docker Compose stack and image, checked without a Docker engine: the files are parsed and
their wiring asserted. tests/distributed/test_entrypoint.py runs the same entry script natively."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = {"web", "worker", "beat", "flower"}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_its_six_services_and_keeps_data_stores_private() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "redis", *APP_SERVICES}
    assert "ports" not in services["redis"] and "ports" not in services["db"]
    assert services["web"]["ports"] == ["${WEB_PORT:-8000}:8000"]


def test_database_has_a_volume_and_a_readiness_check() -> None:
    stack = compose()
    db = stack["services"]["db"]
    assert db["volumes"] == ["pgdata:/var/lib/postgresql/data"] and "pgdata" in stack["volumes"]
    assert "pg_isready -h 127.0.0.1" in " ".join(db["healthcheck"]["test"])
    assert stack["services"]["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_app_services_share_one_definition_and_wait_for_healthy_dependencies() -> None:
    services = compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["image"] == "kasparro-crypto:latest" and service["build"] == "."
        assert service["env_file"] == ".env"
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["environment"]["DATABASE_URL"].endswith("@db:5432/kasparro")
        depends = service["depends_on"]
        assert {"db", "redis"} <= set(depends)
        assert all(condition == {"condition": "service_healthy"} for condition in depends.values())
        assert service["command"] == [name]
        assert service["volumes"] == ["metrics:/tmp/kasparro-metrics"], "one metrics directory for all"
    assert {"web"} <= set(services["worker"]["depends_on"]) and {"web"} <= set(services["beat"]["depends_on"])


def test_exactly_one_beat_and_flower_behind_basic_auth() -> None:
    services = compose()["services"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert services["flower"]["ports"] == ["${FLOWER_BIND:-127.0.0.1}:${FLOWER_PORT:-5555}:5555"]


def test_the_image_installs_dependencies_in_a_cached_layer_and_runs_as_non_root() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    copy_requirements = lines.index("COPY requirements.txt .")
    install = lines.index("RUN pip install -r requirements.txt")
    copy_all = lines.index("COPY . .")
    assert copy_requirements < install < copy_all, "dependencies are a layer of their own"
    user = next(line for line in lines if line.startswith("USER "))
    assert user == "USER app"
    health = next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK"))
    assert "/health" in lines[health + 1]
    assert 'ENTRYPOINT ["docker/entrypoint.sh"]' in lines and 'CMD ["web"]' in lines
    assert (ROOT / "docker" / "entrypoint.sh").stat().st_mode & 0o111


def test_env_example_lists_every_variable_the_settings_and_the_entry_script_read() -> None:
    settings_text = (ROOT / "kasparro" / "settings.py").read_text()
    read = set(
        re.findall(
            r'(?:_read|_bool|_positive_int|_positive_float|_http_url|_rate|_secret|env\.\w+)\(\s*"([A-Z_]+)"',
            settings_text,
        )
    )
    entry_script = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker" / "entrypoint.sh").read_text()))
    entry_script.discard("PROMETHEUS_MULTIPROC_DIR")  # the script sets it for every service itself
    example = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert read and "WEB_BIND" in entry_script, "the patterns find the settings and the entry script's variables"
    assert (read | entry_script) - example == set()
