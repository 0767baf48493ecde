"""The deployment files (Dockerfile, deploy/): Docker itself cannot run in CI, so these check what can
be checked without it: the compose file parses and wires every service to the right place with
settings Ronda knows, the proxy config balances over every API service and upgrades WebSockets, and
the systemd unit passes `systemd-analyze verify` where systemd is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from ronda.cli import app as cli_app
from ronda.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

# Environment variables read by something other than Settings.
OTHER_VARIABLES = {"FORWARDED_ALLOW_IPS"}  # uvicorn's: whose X-Forwarded-For `ronda serve` believes


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def known_variable(name: str) -> bool:
    field = name.removeprefix("RONDA_").lower()
    return name in OTHER_VARIABLES or (name.startswith("RONDA_") and field in Settings.model_fields)


def command_of(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_compose_runs_two_api_processes_on_one_postgres_and_one_redis() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    apis = {name: s for name, s in services.items() if command_of(s).startswith("ronda serve")}
    assert len(apis) >= 2, sorted(services)
    environments = []
    for name, api in apis.items():
        assert "--host 0.0.0.0" in command_of(api), name
        assert "ports" not in api, f"{name} must be reachable only through the proxy"
        env = api["environment"]
        environments.append(env)
        database = env["RONDA_DATABASE_URL"]
        assert database.startswith("postgresql+asyncpg://") and "@postgres:5432/" in database, database
        assert env["RONDA_REDIS_URL"].startswith("redis://redis:6379/")
        assert env["RONDA_SECRET_KEY"].startswith("${RONDA_SECRET_KEY:?"), "the key must come from outside, required"
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in api["volumes"]}
        assert mounts.get(env["RONDA_DATA_DIR"]) == "ronda-data", "reports need the shared data dir"
        assert set(api["depends_on"]) >= {"migrate", "redis"}
        assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        for variable in env:
            assert known_variable(variable), f"{name}: {variable} is not a Ronda setting"
    first = environments[0]
    assert all(env == first for env in environments), "every API process needs the same settings"
    assert "ronda-data" in compose()["volumes"]
    # The one-shot migration runs before the servers, against the same database.
    migrate = services["migrate"]
    assert command_of(migrate) == "ronda migrate" and migrate["environment"] == first
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The database password is one variable, used by PostgreSQL and inside the URL alike.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    assert "${POSTGRES_PASSWORD" in first["RONDA_DATABASE_URL"]


def test_compose_worker_service_matches_the_command_line() -> None:
    """`ronda worker` runs in compose exactly when the command line has it."""
    services = compose()["services"]
    workers = [name for name, s in services.items() if command_of(s) == "ronda worker"]
    has_worker_command = "worker" in get_command(cli_app).commands  # type: ignore[attr-defined]
    if has_worker_command:
        assert workers, "`ronda worker` exists: the compose file must run it"
        worker = services[workers[0]]
        assert worker["environment"] == services["api1"]["environment"]
        # With a worker running, the API processes queue scans for it instead of running them.
        assert worker["environment"]["RONDA_SCAN_EXECUTOR"] == "workers"
        assert worker["healthcheck"] == {"disable": True}, "the image's HTTP health check does not fit a worker"
        assert set(worker["depends_on"]) >= {"migrate", "redis"}
    else:
        assert not workers, "the compose file runs `ronda worker`, which this build does not have"


def test_the_proxy_balances_every_api_process_and_upgrades_websockets() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert any(port.endswith(":80") for port in proxy["ports"])
    source, target = proxy["volumes"][0].split(":")[:2]
    assert target == "/etc/nginx/nginx.conf" and (DEPLOY / source).resolve() == DEPLOY / "nginx.conf"
    config = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream ronda_api \{(.*?)\}", config, re.S)
    assert upstream is not None
    servers = set(re.findall(r"^\s*server (\S+?)(?:\s|;)", upstream.group(1), re.M))
    apis = {f"{name}:8000" for name, s in services.items() if command_of(s).startswith("ronda serve")}
    assert servers == apis
    assert set(proxy["depends_on"]) == {server.split(":")[0] for server in servers}
    websocket = re.search(r"location ~ (\S+) \{(.*?)\}", config, re.S)
    assert websocket is not None, "no WebSocket location"
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket.group(2)
    assert "proxy_set_header Connection $connection_upgrade;" in websocket.group(2)
    # nginx regexes are PCRE; this one is plain enough for Python's: every stream path under every prefix.
    for path in ("/ws/events", "/api/v1/ws/alerts", "/api/ws/scans/scan_1", "/v1/ws/events"):
        assert re.match(websocket.group(1), path), path
    assert not re.match(websocket.group(1), "/api/v1/devices")
    assert "X-Forwarded-For" in config


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    # The upstream host names only resolve inside compose: point them at loopback for the check.
    config = re.sub(r"server api\d+:8000", "server 127.0.0.1:8000", (DEPLOY / "nginx.conf").read_text())
    (tmp_path / "nginx.conf").write_text(config)
    result = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_dockerfile_installs_the_package_and_serves_as_an_unprivileged_user() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("RUN pip install .") for line in lines)
    assert lines[-1] == 'CMD ["ronda", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert {"pyproject.toml", "src"} <= copied
    for name in copied:
        assert (ROOT / name).exists(), name


UNITS = {"ronda.service": ["serve", "--host", "127.0.0.1", "--port", "8000"], "ronda-worker.service": ["worker"]}


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            name, _, value = line.partition("=")
            settings.setdefault(name.strip(), []).append(value.strip())
    return settings


@pytest.mark.parametrize("name", sorted(UNITS))
def test_systemd_units_run_hardened_as_a_dedicated_user(name: str) -> None:
    unit = unit_settings(name)
    assert unit["User"] == ["ronda"]
    assert unit["EnvironmentFile"] == ["/etc/ronda/ronda.env"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    data_dir = next(v.split("=", 1)[1] for v in unit["Environment"] if v.startswith("RONDA_DATA_DIR="))
    assert data_dir in unit["ReadWritePaths"][0].split()
    assert unit["ExecStart"][0].split()[1:] == UNITS[name]
    example = (DEPLOY / "ronda.env.example").read_text()
    names = [line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")]
    assert {"RONDA_SECRET_KEY", "RONDA_DATABASE_URL", "RONDA_REDIS_URL", "RONDA_DATA_DIR"} <= set(names)
    for name in names:
        assert known_variable(name), f"ronda.env.example: {name} is not a Ronda setting"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", sorted(UNITS))
def test_systemd_analyze_verifies_the_units(tmp_path: Path, name: str) -> None:
    ronda = shutil.which("ronda") or str(Path(sys.executable).parent / "ronda")
    if not Path(ronda).exists():
        pytest.skip("no `ronda` executable to point ExecStart at")
    unit = tmp_path / name
    unit.write_text((DEPLOY / name).read_text().replace("/opt/ronda/bin/ronda", ronda))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys too: what it prints is the finding.
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr
