"""What every `ronda` command module shares: the consoles and settings that end the command cleanly."""

from __future__ import annotations

import typer
from rich.console import Console

from ronda.config import Settings, SettingsError, load_settings

console = Console()
errors = Console(stderr=True)


def settings_or_exit() -> Settings:
    """The RONDA_* settings; a bad value is one line on stderr and exit status 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        errors.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
