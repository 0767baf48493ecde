"""The `ronda` command line. Thin: each command parses, calls a service, prints."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from ronda.agent.cli import agent_app
from ronda.cli_support import console, errors, settings_or_exit
from ronda.cve.cli import cve_app

app = typer.Typer(
    help="Ronda: what is on our networks, is every device compliant, can we prove it.",
    no_args_is_help=True,
    add_completion=False,
)
admin_app = typer.Typer(help="Administer users and tenants from the server's machine.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect the append-only audit log.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")
app.add_typer(agent_app, name="agent")
app.add_typer(cve_app, name="cve")




@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) to RONDA_DATABASE_URL, or the SQLite file under RONDA_DATA_DIR."""
    from ronda.core.migrate import upgrade

    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    console.print(f"database is up to date: {_redact(settings.resolved_database_url)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option(help="Server processes (share state through Redis and the database)", min=1, max=64)
    ] = 1,
) -> None:
    """Migrate the database, then serve the API (docs at /docs)."""
    import uvicorn

    from ronda.core.migrate import upgrade
    from ronda.users.admin import count_users

    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.ensure_secret_key()
    if workers > 1 and settings.is_sqlite and not settings.redis_url:
        errors.print("[yellow]note:[/] several workers without RONDA_REDIS_URL keep separate rate-limit budgets")
    upgrade(settings.resolved_database_url)
    if asyncio.run(count_users(settings)) == 0:
        launched = sys.argv[0]
        exe = "ronda" if shutil.which("ronda") or launched.endswith(".py") else os.path.relpath(launched)
        console.print(
            f"[bold]No users yet.[/] Create the first admin with:\n  {exe} admin create --username admin "
            '--email admin@example.com --tenant "My Company" --role super_admin',
            soft_wrap=True,
        )
    console.print(f"Ronda serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "ronda.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,
        proxy_headers=True,
        # Whose X-Forwarded-For is believed (uvicorn's own variable): the reverse proxy's address when scaled out.
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        ws_max_size=64 * 1024,  # a WebSocket frame larger than this is refused (1009) before the app sees it
    )


@app.command("backup")
def backup_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Archive path (default: DATA_DIR/backups/ronda-<time>.tar.gz)."),
    ] = None,
) -> None:
    """Write a backup archive: the database (a consistent copy, also while serving), the signing key
    and generated reports. PostgreSQL needs pg_dump on PATH."""
    from ronda.backup import BackupError, backup

    try:
        summary = backup(settings_or_exit(), output)
    except BackupError as exc:
        errors.print(f"[red]backup failed:[/] {exc}")
        raise typer.Exit(1) from None
    rows = sum(summary.tables.values())
    detail = f", {len(summary.tables)} tables, {rows} rows" if summary.tables else ""
    console.print(f"backup written to {summary.path} ({summary.engine}, {summary.database_bytes} bytes{detail}, "
                  f"{summary.reports} report files)")


@app.command("restore")
def restore_command(
    archive: Annotated[Path, typer.Argument(help="An archive written by `ronda backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that already holds data.")] = False,
) -> None:
    """Restore a `ronda backup` archive into the configured database and data dir, then migrate.
    PostgreSQL needs pg_restore and psql on PATH."""
    from ronda.backup import BackupError, restore

    try:
        summary = restore(settings_or_exit(), archive, force=force)
    except BackupError as exc:
        errors.print(f"[red]restore failed:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"restored {summary.path} ({summary.engine}, {sum(summary.tables.values())} rows, "
                  f"{summary.reports} report files); migrations applied")


@admin_app.command("create")
def admin_create(
    username: Annotated[str, typer.Option(help="Login name")],
    email: Annotated[str, typer.Option(help="Email address")],
    password: Annotated[str | None, typer.Option(help="Password (else RONDA_ADMIN_PASSWORD, else a prompt)")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant name; created if new")] = "Default",
    role: Annotated[str, typer.Option(help="super_admin, admin, analyst, operator, user or viewer")] = "super_admin",
    full_name: Annotated[str, typer.Option(help="Display name")] = "",
) -> None:
    """Create a tenant (if new) and a user in it. There is never a default password."""
    from ronda.core.migrate import upgrade
    from ronda.users.admin import AdminError, create_admin

    settings = settings_or_exit()
    secret = password or settings.admin_password or os.environ.get("RONDA_ADMIN_PASSWORD")
    if not secret:
        if not sys.stdin.isatty():
            errors.print("[red]error:[/] no password: pass --password, set RONDA_ADMIN_PASSWORD, or run on a terminal")
            raise typer.Exit(2)
        secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    try:
        user_id, tenant_id, created = asyncio.run(
            create_admin(
                settings, username=username, email=email, password=secret, tenant=tenant, role=role, full_name=full_name
            )
        )
    except AdminError as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    what = "new tenant" if created else "existing tenant"
    console.print(f"created {role} [bold]{username}[/] ({user_id}) in {what} {tenant!r} ({tenant_id})")


@audit_app.command("verify")
def audit_verify(
    tenant_id: Annotated[str | None, typer.Option(help="Check one tenant's chain only")] = None,
) -> None:
    """Recompute every audit chain's hashes; name the first tampered, missing or reordered record."""
    from ronda.audit.admin import verify_all

    settings = settings_or_exit()
    reports = asyncio.run(verify_all(settings, tenant_id))
    broken = 0
    for report in reports:
        if report.valid:
            console.print(f"[green]ok[/]      {report.chain}: {report.checked} records")
        else:
            broken += 1
            first = report.first_broken or {}
            console.print(
                f"[red]BROKEN[/]  {report.chain}: first bad record seq {first.get('seq')} id {first.get('id')}: "
                f"{first.get('reason')} ({report.checked} records verified before it)"
            )
    if not reports:
        console.print("no audit records yet")
    raise typer.Exit(1 if broken else 0)


@app.command()
def scan(
    targets: Annotated[list[str], typer.Argument(help="IPs, CIDRs, ranges (10.0.0.1-50), host names")],
    profile: Annotated[str, typer.Option(help="quick, normal, deep, stealth or custom")] = "normal",
    ports: Annotated[str | None, typer.Option(help='e.g. "22,80,8000-8100", "top 100", "all"')] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Addresses or networks to skip")] = None,
    timeout_ms: Annotated[int | None, typer.Option(help="Probe timeout ceiling (ms)")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Probes in flight at once")] = None,
    max_rate: Annotated[float | None, typer.Option(help="Probes per second cap")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries for silent ports")] = None,
    processes: Annotated[int | None, typer.Option(help="Scanning processes (default: one per core)")] = None,
    engine: Annotated[str, typer.Option(help="builtin or nmap")] = "builtin",
    no_discovery: Annotated[bool, typer.Option("--no-discovery", help="Treat every address as up")] = False,
    detection: Annotated[bool | None, typer.Option("--detection/--no-detection", help="Service detection")] = None,
    profiling: Annotated[bool | None, typer.Option("--profiling/--no-profiling", help="OS/device profiling")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
) -> None:
    """Scan hosts and ports without a server: live progress bar, then a table (or JSON / CSV)."""
    from ronda.scanner.console import ScanArgs, run

    args = ScanArgs(
        targets=targets, profile=profile, ports=ports, exclude=exclude or [], timeout_ms=timeout_ms,
        max_concurrent=max_concurrent, max_rate=max_rate, retries=retries, processes=processes, engine=engine,
        discovery=not no_discovery, detection=detection, profiling=profiling, as_json=as_json, as_csv=as_csv,
    )
    raise typer.Exit(run(args))


@app.command()
def worker() -> None:
    """Run scans that API servers queue (RONDA_SCAN_EXECUTOR=workers): lease, run, merge; until SIGTERM."""
    from ronda.scans.worker import run_worker

    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_worker(settings, ready=lambda runner_id: console.print(f"worker {runner_id} ready")))


@app.command()
def probe(
    server: Annotated[str, typer.Option(help="The Ronda server's URL, e.g. https://ronda.example.com")],
    key: Annotated[str, typer.Option(help="The probe key from POST /sites/{id}/probes", envvar="RONDA_PROBE_KEY")],
    once: Annotated[bool, typer.Option("--once", help="Exit after running one scan")] = False,
    wait: Annotated[float, typer.Option(help="Seconds each long-poll waits for a scan", min=0, max=25)] = 25.0,
) -> None:
    """A remote sensor for one site: long-polls the server for that site's scans, runs them here, posts results."""
    from ronda.core.logging import configure_logging
    from ronda.probes.client import run_probe

    configure_logging(os.environ.get("RONDA_LOG_LEVEL", "INFO").upper(), "text")
    raise typer.Exit(asyncio.run(run_probe(server, key, once=once, wait=wait)))


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main() -> None:
    app()


if __name__ == "__main__":
    main()
