"""`ronda agent collect|enroll|run`: the endpoint agent's command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

agent_app = typer.Typer(
    help="The endpoint agent: collect this machine's posture, enrol with a server, report on a schedule.",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)

ConfigDirOption = Annotated[
    Path | None,
    typer.Option("--config-dir", envvar="RONDA_AGENT_DIR",
                 help="Where config and credential live (default /etc/ronda-agent as root, else "
                      "~/.config/ronda-agent)"),
]
COLOURS = {"pass": "green", "fail": "red", "unknown": "yellow"}


def _store(config_dir: Path | None) -> Any:
    from ronda.agent.config import ConfigStore, default_dir

    return ConfigStore(config_dir or default_dir())


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@agent_app.command("collect")
def collect_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report body as JSON")] = False,
) -> None:
    """Collect this machine's report and print it (nothing is sent)."""
    from ronda.agent.collectors import UnsupportedPlatform, collect

    _logging("WARNING")
    try:
        report = collect()
    except UnsupportedPlatform as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    print_summary(report)


def print_summary(report: dict[str, Any]) -> None:
    hardware = report.get("hardware") or {}
    network = report.get("network") or {}
    software = report.get("software") or {}
    os_name = (hardware.get("os") or {}).get("name") or report.get("os_type")
    console.print(f"[bold]{report.get('device_name')}[/] ({report.get('hostname')}), {report.get('device_type')}")
    console.print(f"OS: {os_name} {report.get('os_version') or ''}  serial: {report.get('serial_number') or '-'}")
    memory = hardware.get("memory_bytes")
    console.print(
        f"Hardware: {hardware.get('manufacturer') or '-'} {hardware.get('model') or ''}; "
        f"CPU {hardware.get('cpu_model') or '-'} ({hardware.get('cpu_cores') or '?'} cores); "
        f"memory {round(memory / 2**30, 1) if memory else '?'} GiB; disks {len(hardware.get('disks') or [])}"
    )
    console.print(
        f"Software: {software.get('count', 0)} packages; network: {len(network.get('interfaces') or [])} interfaces, "
        f"{len(network.get('listening_ports') or [])} listening ports"
    )
    table = Table(title="Posture checks")
    table.add_column("Check")
    table.add_column("Result")
    table.add_column("Decided by")
    table.add_column("Why")
    security = report.get("security") or {}
    details = security.get("details") or {}
    for name in ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled"):
        result = str(security.get(name, "unknown"))
        info = details.get(name) or {}
        table.add_row(name, f"[{COLOURS.get(result, 'white')}]{result}[/]", str(info.get("source") or "-"),
                      str(info.get("reason") or ""))
    console.print(table)


@agent_app.command("enroll")
def enroll_command(
    server: Annotated[str, typer.Option(help="The Ronda server, e.g. https://ronda.example.com")],
    token: Annotated[str, typer.Option(envvar="RONDA_AGENT_TOKEN", help="Enrolment token from an administrator")],
    config_dir: ConfigDirOption = None,
    ca_file: Annotated[str | None, typer.Option(help="CA bundle to trust for the server's TLS certificate")] = None,
    force: Annotated[bool, typer.Option(help="Enrol again even if this machine is already enrolled")] = False,
) -> None:
    """Enrol this machine: exchange a one-time token for this agent's own credential."""
    from ronda.agent.client import EnrollError
    from ronda.agent.collectors import UnsupportedPlatform, collector_for
    from ronda.agent.host import platform_name
    from ronda.agent.service import enroll

    _logging("WARNING")
    store = _store(config_dir)
    if store.exists() and not force:
        errors.print(f"[red]error:[/] already enrolled (configuration in {store.directory}); pass --force to "
                     "enrol again")
        raise typer.Exit(1)
    try:
        identity = collector_for().identity()
        config = enroll(store, server, token, identity, platform_name(), ca_file=ca_file)
    except (EnrollError, ValueError, UnsupportedPlatform) as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except OSError as exc:
        errors.print(f"[red]error:[/] cannot write the configuration: {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"enrolled as agent [bold]{config.agent_id}[/] (device {config.device_id}); configuration in "
        f"{store.directory}; reports every {config.report_interval}s, heartbeat every {config.heartbeat_interval}s"
    )


@agent_app.command("run")
def run_command(
    once: Annotated[bool, typer.Option("--once", help="Collect, send (and flush the queue), then exit")] = False,
    config_dir: ConfigDirOption = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Report on a schedule until stopped (SIGTERM/Ctrl-C); with --once, report once and exit 1 if not sent."""
    from ronda.agent.client import ServerClient
    from ronda.agent.collectors import UnsupportedPlatform, collector_for
    from ronda.agent.config import ConfigError, NotEnrolled
    from ronda.agent.service import Agent

    _logging(log_level)
    store = _store(config_dir)
    try:
        config, credential = store.load()
        collector_for()  # fail now on an unsupported platform, not at the first report
    except (NotEnrolled, ConfigError, UnsupportedPlatform) as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    with ServerClient(config.server_url, credential, ca_file=config.ca_file) as client:
        agent = Agent(store, config, client, lambda: collector_for().collect())
        if once:
            try:
                sent, result = agent.report_once()
            except OSError as exc:  # the queue directory is not writable, the disk is full
                errors.print(f"[red]error:[/] cannot queue the report: {exc}")
                raise typer.Exit(1) from None
            if not sent:
                errors.print(f"[red]report not sent:[/] {result.last_error}; {result.remaining} report(s) queued "
                             f"in {store.queue_dir}")
                raise typer.Exit(1)
            console.print(f"report sent ({result.sent} sent, {result.rejected} refused, {result.remaining} queued)")
            return
        stop = threading.Event()

        def _stop(signum: int, _frame: Any) -> None:
            logging.getLogger("ronda.agent").info("signal %d: stopping", signum)
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        agent.run(stop)
