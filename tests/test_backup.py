"""`ronda backup` and `ronda restore`, as separate processes, on the engine the suite runs on."""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import text

from ronda.core.db import create_engine
from tests.test_cli import fresh_env, run

PASSWORD = "a long enough passphrase"


def _postgres_url(base: str, name: str) -> str:
    prefix, _, _ = base.rpartition("/")
    admin_args = ["psql", base.replace("+asyncpg", "").rpartition("/")[0] + "/postgres", "-qc"]
    subprocess.run([*admin_args, f"DROP DATABASE IF EXISTS {name}"], check=True, capture_output=True)
    subprocess.run([*admin_args, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return f"{prefix}/{name}"


@pytest.fixture
def databases(tmp_path: Path) -> tuple[str, str]:
    """A source and an empty destination database on the engine under test."""
    base = os.environ.get("RONDA_TEST_DATABASE_URL", "")
    if base.startswith("postgresql"):
        return _postgres_url(base, "ronda_backup_source"), _postgres_url(base, "ronda_backup_target")
    return f"sqlite+aiosqlite:///{tmp_path / 'source.db'}", f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """What the command printed, with rich's line wrapping undone."""
    return " ".join((proc.stdout + proc.stderr).split())


async def usernames(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text("SELECT username FROM users ORDER BY username"))).scalars())
    finally:
        await engine.dispose()


async def test_backup_then_restore_elsewhere(tmp_path: Path, databases: tuple[str, str]) -> None:
    source_url, target_url = databases
    source = {**fresh_env(tmp_path / "a"), "RONDA_DATABASE_URL": source_url, "RONDA_ADMIN_PASSWORD": PASSWORD}
    target = {**fresh_env(tmp_path / "b"), "RONDA_DATABASE_URL": target_url}
    for name in ("alice", "bob"):
        made = run(["admin", "create", "--username", name, "--email", f"{name}@example.com"], source)
        assert made.returncode == 0, made.stderr
    data_dir = Path(source["RONDA_DATA_DIR"])
    (data_dir / "reports").mkdir(parents=True)
    (data_dir / "reports" / "rep_1.pdf").write_bytes(b"%PDF-1.4 auditor copy")
    secret = data_dir / "secret_key"
    secret.write_text("s" * 48)

    archive = tmp_path / "nightly.tar.gz"
    made = run(["backup", "--output", str(archive)], source)
    assert made.returncode == 0, made.stderr
    assert "backup written to" in said(made) and "1 report files" in said(made)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # it holds the signing key
    with tarfile.open(archive) as opened:
        assert {"manifest.json", "secret_key", "reports/rep_1.pdf"} <= set(opened.getnames())

    restored = run(["restore", str(archive)], target)
    assert restored.returncode == 0, restored.stderr
    assert await usernames(target_url) == ["alice", "bob"]
    target_dir = Path(target["RONDA_DATA_DIR"])
    assert (target_dir / "reports" / "rep_1.pdf").read_bytes() == b"%PDF-1.4 auditor copy"
    assert (target_dir / "secret_key").read_text() == "s" * 48
    assert stat.S_IMODE((target_dir / "secret_key").stat().st_mode) == 0o600
    verified = run(["audit", "verify"], target)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # A database holding data is replaced only when asked to.
    again = run(["restore", str(archive)], target)
    assert again.returncode == 1 and "already holds" in said(again)
    forced = run(["restore", "--force", str(archive)], target)
    assert forced.returncode == 0, forced.stderr
    assert await usernames(target_url) == ["alice", "bob"]


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    env = {**fresh_env(tmp_path), "RONDA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive at all")
    bad = run(["restore", str(junk)], env)
    assert bad.returncode == 1 and "not a readable Ronda backup" in said(bad)
    missing = run(["restore", str(tmp_path / "nope.tar.gz")], env)
    assert missing.returncode == 1 and "no such file" in said(missing)
    escape = tmp_path / "escape.tar.gz"
    with tarfile.open(escape, "w:gz") as archive:
        archive.add(junk, arcname="../../etc/evil")
    refused = run(["restore", str(escape)], env)
    assert refused.returncode == 1 and "refusing archive member" in said(refused)
    assert not (tmp_path.parent.parent / "etc" / "evil").exists()
    nothing = run(["backup"], env)
    assert nothing.returncode == 1 and "nothing to back up" in said(nothing)
