"""`ronda backup` and `ronda restore`: one archive with the database, the signing key and the reports.

SQLite is copied with its online backup API: a consistent snapshot while the server keeps serving
(readers and writers carry on; the copy sees one committed state). PostgreSQL is dumped with
`pg_dump --format=custom` and restored with `pg_restore --clean --if-exists`, both of which must be
on PATH (PostgreSQL's client tools). The archive also holds `DATA_DIR/secret_key` (without it every
issued token and stored webhook signature key would be useless) and `DATA_DIR/reports/`.

A restore refuses to overwrite a database that already holds data unless told to (`force`); a
SQLite restore writes through the backup API too, so a server that is still running sees the
restored state rather than a file swapped under it. Migrations are applied afterwards, so an
archive from an older release comes up on the current schema.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from ronda import __version__
from ronda.auth.epoch import epoch_for
from ronda.config import Settings
from ronda.core.migrate import upgrade

MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
SECRET_MEMBER = "secret_key"
REPORTS_MEMBER = "reports"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why, in one line."""


@dataclass
class Summary:
    path: Path
    engine: str
    database_bytes: int
    reports: int
    tables: dict[str, int] = field(default_factory=dict)


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the PostgreSQL client tools; the password goes in the environment."""
    parts = urlsplit(url.replace("+asyncpg", ""))
    args = ["--host", parts.hostname or "localhost", "--port", str(parts.port or 5432)]
    if parts.username:
        args += ["--username", parts.username]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
    return [*args, "--dbname", parts.path.lstrip("/")], env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found on PATH: install PostgreSQL's client tools")
    return found


def _table_counts(connection: sqlite3.Connection) -> dict[str, int]:
    names = [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    # The names come from sqlite_master, not from input.
    return {name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # noqa: S608
            for name in names}


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(data))


def backup(settings: Settings, output: Path | None = None) -> Summary:
    """Write the archive (default: DATA_DIR/backups/ronda-<UTC time>.tar.gz, mode 0600)."""
    url = settings.resolved_database_url
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = output or settings.data_dir / "backups" / f"ronda-{stamp}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ronda-backup-") as tmp:
        staging = Path(tmp)
        if settings.is_sqlite:
            source_path = sqlite_path(url)
            if not source_path.exists():
                raise BackupError(f"no database at {source_path}: nothing to back up")
            dump = staging / SQLITE_MEMBER
            with sqlite3.connect(source_path) as source, sqlite3.connect(dump) as copy:
                source.backup(copy)
                if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise BackupError("the copy failed SQLite's integrity check; the database needs attention")
                tables = _table_counts(copy)
            engine, member = "sqlite", SQLITE_MEMBER
        else:
            args, env = _pg_args(url)
            dump = staging / PG_MEMBER
            command = [_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(dump), *args]
            done = subprocess.run(command, env=env, capture_output=True, text=True)  # noqa: S603 (no shell)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
            engine, member, tables = "postgresql", PG_MEMBER, {}
        reports_dir = settings.data_dir / "reports"
        report_files = sorted(p for p in reports_dir.rglob("*") if p.is_file()) if reports_dir.exists() else []
        manifest = {"format": 1, "ronda_version": __version__, "created_at": stamp, "engine": engine,
                    "tables": tables, "reports": len(report_files)}
        partial = target.with_name(target.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode(), 0o644)
            archive.add(dump, arcname=member)
            secret = settings.data_dir / "secret_key"
            if secret.exists():
                _add_bytes(archive, SECRET_MEMBER, secret.read_bytes())
            for path in report_files:
                archive.add(path, arcname=f"{REPORTS_MEMBER}/{path.relative_to(reports_dir)}")
        partial.replace(target)  # a crash mid-write never leaves a truncated archive under the real name
        return Summary(target, engine, dump.stat().st_size, len(report_files), tables)


def _safe_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for member in members:
        if member.name.startswith("/") or ".." in Path(member.name).parts or not (member.isfile() or member.isdir()):
            raise BackupError(f"refusing archive member {member.name!r}: not a plain file inside the archive")
    return members


def restore(settings: Settings, archive_path: Path, *, force: bool = False) -> Summary:
    """Put the archive's database, key and reports back, then apply migrations."""
    if not archive_path.is_file():
        raise BackupError(f"{archive_path}: no such file")
    url = settings.resolved_database_url
    with tempfile.TemporaryDirectory(prefix="ronda-restore-") as tmp:
        staging = Path(tmp)
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                members = _safe_members(archive)
                if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: refuse links and odd modes as well
                    archive.extractall(staging, members=members, filter="data")
                else:
                    archive.extractall(staging, members=members)  # noqa: S202 (members checked above)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BackupError(f"{archive_path}: not a readable Ronda backup ({exc})") from None
        manifest_path = staging / MANIFEST
        if not manifest_path.exists():
            raise BackupError(f"{archive_path}: no {MANIFEST}; not a Ronda backup")
        manifest = json.loads(manifest_path.read_text())
        engine = "sqlite" if settings.is_sqlite else "postgresql"
        if manifest.get("engine") != engine:
            raise BackupError(f"the archive holds a {manifest.get('engine')} database; this server uses {engine}")
        if engine == "sqlite":
            tables = _restore_sqlite(sqlite_path(url), staging / SQLITE_MEMBER, force)
            size = (staging / SQLITE_MEMBER).stat().st_size
        else:
            _restore_postgres(url, staging / PG_MEMBER, force)
            tables, size = {}, (staging / PG_MEMBER).stat().st_size
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = staging / SECRET_MEMBER
        if secret.exists():
            destination = settings.data_dir / "secret_key"
            destination.write_bytes(secret.read_bytes())
            destination.chmod(0o600)
        reports = 0
        if (staging / REPORTS_MEMBER).exists():
            for path in (staging / REPORTS_MEMBER).rglob("*"):
                if path.is_file():
                    destination = settings.data_dir / "reports" / path.relative_to(staging / REPORTS_MEMBER)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)
                    reports += 1
    upgrade(url)
    # Servers still running remember callers of the replaced database: make them read again.
    epoch = epoch_for(settings, make_url(url))
    if epoch is not None:
        epoch.bump()
    return Summary(archive_path, engine, size, reports, tables)


def _restore_sqlite(target: Path, dump: Path, force: bool) -> dict[str, int]:
    if not dump.exists():
        raise BackupError(f"the archive has no {SQLITE_MEMBER}")
    with sqlite3.connect(dump) as source:
        if source.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError("the archived database fails SQLite's integrity check; nothing was changed")
        tables = _table_counts(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(target, timeout=30) as destination:
            existing = _table_counts(destination)
            if not force and any(n for name, n in existing.items() if name != "alembic_version"):
                raise BackupError(f"{target} already holds data; pass --force to replace it")
            source.backup(destination)
    return tables


def _restore_postgres(url: str, dump: Path, force: bool) -> None:
    if not dump.exists():
        raise BackupError(f"the archive has no {PG_MEMBER}")
    args, env = _pg_args(url)
    if not force:
        probe = subprocess.run([_tool("psql"), *args, "-tAc",  # noqa: S603
                                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"],
                               env=env, capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() not in ("", "0"):
            raise BackupError("the database already holds tables; pass --force to replace them")
    command = [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--exit-on-error", *args, str(dump)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
