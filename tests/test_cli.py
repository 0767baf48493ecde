"""The `ronda` command line, run as a user would run it: as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

RONDA = [sys.executable, "-m", "ronda.cli"]


def run(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(RONDA + args, env=env, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]


def fresh_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RONDA_")}
    env.update({"RONDA_DATA_DIR": str(tmp_path / "var"), "RONDA_ARGON2_MEMORY_KIB": "8192"})
    return env


def test_help_texts_explain_each_command(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    top = run(["--help"], env)
    assert top.returncode == 0
    for command in ("serve", "migrate", "admin", "audit"):
        assert command in top.stdout
    assert "never a default password" in run(["admin", "create", "--help"], env).stdout.lower().replace("\n", " ")


def test_admin_create_refuses_weak_passwords_and_never_defaults(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    weak = run(["admin", "create", "--username", "root", "--email", "r@example.com", "--password", "short"], env)
    assert weak.returncode == 1 and "12 characters" in weak.stderr
    none = run(["admin", "create", "--username", "root", "--email", "r@example.com"], env, stdin=subprocess.DEVNULL)
    assert none.returncode == 2 and "no password" in none.stderr
    ok = run(["admin", "create", "--username", "root", "--email", "r@example.com", "--tenant", "Acme"],
             {**env, "RONDA_ADMIN_PASSWORD": "a long enough passphrase"})
    assert ok.returncode == 0, ok.stderr
    assert "root" in ok.stdout and "Acme" in ok.stdout
    again = run(
        ["admin", "create", "--username", "root", "--email", "r@example.com", "--password", "another long pass"], env
    )
    assert again.returncode == 1 and "already exists" in again.stderr


def test_serve_migrates_hints_at_the_first_admin_and_serves(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    port = free_port()
    proc = subprocess.Popen([*RONDA, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        healthy = None
        while time.monotonic() < deadline:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert healthy is not None and healthy.json()["database"] == "ok"
        login = httpx.post(f"http://127.0.0.1:{port}/api/auth/login", json={"username": "admin", "password": "admin"})
        assert login.status_code == 401  # no default account exists
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "ronda admin create" in output
    assert (tmp_path / "var" / "ronda.db").exists()
    assert oct((tmp_path / "var" / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    first = run(["migrate"], env)
    second = run(["migrate"], env)
    assert first.returncode == 0 and second.returncode == 0
    assert "up to date" in second.stdout
