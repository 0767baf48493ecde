"""`ronda cve import FILE…`: load NVD CVE JSON (2.0 feed/API format, plain or gzip) into the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ronda.cli_support import console, errors, settings_or_exit
from ronda.config import Settings

cve_app = typer.Typer(help="CVE intelligence: import NVD feeds.", no_args_is_help=True)




@cve_app.command("import")
def import_command(
    files: Annotated[list[Path], typer.Argument(help="NVD 2.0 JSON files (.json or .json.gz)")],
) -> None:
    """Import NVD CVE JSON files. Each file lands whole or not at all; a newer lastModified updates a CVE.
    A running server re-matches every device against the new data within RONDA_CVE_MATCH_INTERVAL."""
    from ronda.core.migrate import upgrade

    for path in files:
        if not path.is_file():
            errors.print(f"[red]error:[/] {path}: no such file", soft_wrap=True, highlight=False)
            raise typer.Exit(2)
    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    raise typer.Exit(asyncio.run(_import(settings, files)))


async def _import(settings: Settings, files: list[Path]) -> int:
    from ronda.core.db import create_engine, create_session_factory
    from ronda.cve.importer import FeedError, check_header
    from ronda.cve.service import import_file

    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    done = 0
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True, disable=not console.is_terminal) as progress:
            for path in files:
                try:
                    total = await asyncio.to_thread(check_header, path, path.name)
                    task = progress.add_task(path.name, total=total)

                    def advance(count: int, task_id: TaskID = task) -> None:
                        progress.advance(task_id, count)

                    result = await import_file(sessions, path, source="cli", progress=advance)
                except FeedError as exc:
                    progress.stop()
                    errors.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
                    errors.print(f"nothing of {path.name} was imported"
                                 + (f"; {done} earlier file(s) were" if done else ""), highlight=False)
                    return 2
                done += 1
                console.print(f"{result.file}: {result.records} records, {result.created} new, {result.updated} "
                              f"updated, {result.skipped} unchanged", highlight=False, soft_wrap=True)
    finally:
        await engine.dispose()
    return 0
