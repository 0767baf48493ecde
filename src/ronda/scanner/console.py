"""``ronda scan``: scan from the command line without a server.

A rich progress bar on stderr when it is a terminal, a table of hosts and ports at the end, or JSON /
CSV on stdout for scripts. Bad input: one line on stderr and exit status 2. Imports nothing
server-side, so ``python -m ronda.scanner`` starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ronda.scanner.engine import run_scan
from ronda.scanner.profiles import PROFILES
from ronda.scanner.types import ScanEvent, ScanInputError, ScanOptions, ScanResult

if TYPE_CHECKING:  # rich is imported only when a table or a progress bar is drawn (JSON/CSV start faster)
    from rich.console import Console
    from rich.table import Table

CSV_COLUMNS = (
    "ip", "hostname", "mac", "vendor", "os_guess", "device_type", "port", "protocol", "state", "service",
    "product", "version", "cpe",
)


@dataclass(slots=True)
class ScanArgs:
    targets: list[str]
    profile: str = "normal"
    ports: str | None = None
    exclude: list[str] = field(default_factory=list)
    timeout_ms: int | None = None
    max_concurrent: int | None = None
    max_rate: float | None = None
    retries: int | None = None
    processes: int | None = None
    engine: str = "builtin"
    discovery: bool = True
    detection: bool | None = None
    profiling: bool | None = None
    as_json: bool = False
    as_csv: bool = False


def to_csv(result: ScanResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for host in result.hosts:
        head = [host.ip, host.hostname, host.mac, host.vendor, host.os_guess, host.device_type]
        if not host.ports:
            writer.writerow([*head, "", "", "", "", "", "", ""])
        for port in host.ports:
            writer.writerow(
                [*head, port.port, port.protocol, port.state, port.service, port.product, port.version,
                 " ".join(port.cpe)]
            )
    return out.getvalue()


def render_table(result: ScanResult) -> Table:
    from rich.table import Table

    seconds = (result.finished_at - result.started_at).total_seconds()
    table = Table(
        title=f"{len(result.hosts)} of {result.hosts_total} hosts up, {result.ports_per_host} ports each, "
        f"{seconds:.2f} s",
        show_lines=False,
    )
    for column in ("host", "mac / vendor", "os / type", "port", "service", "product / version"):
        table.add_column(column)
    for host in result.hosts:
        name = host.ip + (f"\n{host.hostname}" if host.hostname else "")
        mac = " ".join(filter(None, [host.mac, host.vendor])) or "-"
        kind = " / ".join(filter(None, [host.os_guess, host.device_type])) or "-"
        if not host.ports:
            table.add_row(name, mac, kind, "-", "no open ports", "")
        for i, port in enumerate(host.ports):
            product = " ".join(filter(None, [port.product, port.version]))
            table.add_row(
                name if i == 0 else "", mac if i == 0 else "", kind if i == 0 else "",
                f"{port.port}/{port.protocol}", port.service or "", product,
            )
    return table


async def _scan(options: ScanOptions, errors: Console | None) -> ScanResult:
    """Run the scan; with a terminal console, draw a progress bar on it."""
    if errors is None or not errors.is_terminal:
        return await run_scan(options)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]scanning[/]"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[found]}"), TimeRemainingColumn(), console=errors, transient=True,
    ) as bar:
        task = bar.add_task("scan", total=100.0, found="")

        def on_event(event: ScanEvent) -> None:
            if event.kind == "progress":
                data = event.data
                bar.update(
                    task,
                    completed=data["progress_percent"],
                    found=f"{data['hosts_found']} hosts, {data['ports_found']} open ports",
                )

        return await run_scan(options, on_event)


def run(args: ScanArgs, out: Console | None = None, errors: Console | None = None) -> int:
    """Run one scan and print it; returns the exit status."""
    if args.as_json and args.as_csv:
        sys.stderr.write("error: choose one of --json and --csv\n")
        return 2
    options = ScanOptions(
        targets=args.targets,
        exclude=args.exclude,
        ports=args.ports,
        profile=args.profile,
        timeout_ms=args.timeout_ms,
        max_concurrent=args.max_concurrent,
        max_rate=args.max_rate,
        retries=args.retries,
        enable_profiling=args.profiling,
        enable_service_detection=args.detection,
        engine=args.engine,
        processes=args.processes,
        discovery=args.discovery,
    )
    if errors is None and sys.stderr.isatty():
        from rich.console import Console

        errors = Console(stderr=True)
    try:
        result = asyncio.run(_scan(options, errors))
    except ScanInputError as exc:
        sys.stderr.write(f"error: {exc.field}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("scan interrupted\n")
        return 130
    if args.as_json:
        import orjson  # far faster than json with indent on a big network's result

        sys.stdout.buffer.write(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    elif args.as_csv:
        sys.stdout.write(to_csv(result))
    else:
        if out is None:
            from rich.console import Console

            out = Console(soft_wrap=True)
        out.print(render_table(result))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ronda scan", description="Scan hosts and ports without a server.")
    p.add_argument("targets", nargs="+", help="IPs, CIDRs, ranges (10.0.0.1-50), host names")
    p.add_argument("--profile", default="normal", choices=list(PROFILES))
    p.add_argument("--ports", help='e.g. "22,80,8000-8100", "top 100", "all"')
    p.add_argument("--exclude", action="append", default=[], help="addresses or networks to skip")
    p.add_argument("--timeout-ms", type=int)
    p.add_argument("--max-concurrent", type=int)
    p.add_argument("--max-rate", type=float, help="probes per second")
    p.add_argument("--retries", type=int)
    p.add_argument("--processes", type=int, help="scanning processes (default: one per core)")
    p.add_argument("--engine", default="builtin", choices=["builtin", "nmap"])
    p.add_argument("--no-discovery", action="store_true", help="treat every address as up (like nmap -Pn)")
    p.add_argument("--detection", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--profiling", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    return run(
        ScanArgs(
            targets=ns.targets, profile=ns.profile, ports=ns.ports, exclude=ns.exclude, timeout_ms=ns.timeout_ms,
            max_concurrent=ns.max_concurrent, max_rate=ns.max_rate, retries=ns.retries, processes=ns.processes,
            engine=ns.engine, discovery=not ns.no_discovery, detection=ns.detection, profiling=ns.profiling,
            as_json=ns.json, as_csv=ns.csv,
        )
    )
