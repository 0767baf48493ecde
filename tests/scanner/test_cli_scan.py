"""`ronda scan` on real listeners: once as a subprocess (the installed command line), the rest through
typer's runner in-process (the same command, without paying the interpreter start each time)."""

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ronda.cli import app
from tests.scanner.listeners import Listeners, closed_port

RONDA = [sys.executable, "-m", "ronda.cli", "scan"]
QUIET = ["--no-detection", "--no-profiling"]


def ronda(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RONDA, *args], capture_output=True, text=True, timeout=60, check=False)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["scan", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def target() -> object:
    with Listeners() as listeners:
        a = listeners.open("127.0.0.11")
        b = listeners.open("127.0.0.11", silent=True)
        yield (a, b, closed_port("127.0.0.11"))


def test_json(target: tuple[int, int, int]) -> None:
    a, b, shut = target
    proc = ronda("127.0.0.11", "--ports", f"{a},{b},{shut}", "--json", *QUIET)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [h["ip"] for h in data["hosts"]] == ["127.0.0.11"]
    assert sorted(p["port"] for p in data["hosts"][0]["ports"]) == sorted([a, b])
    assert data["ports_per_host"] == 3 and data["engine"] == "builtin"
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_csv(target: tuple[int, int, int]) -> None:
    a, _b, shut = target
    code, out, err = invoke("127.0.0.11", "--ports", f"{a},{shut}", "--csv", *QUIET)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["ip"], r["port"], r["state"]) for r in rows] == [("127.0.0.11", str(a), "open")]


def test_table(target: tuple[int, int, int]) -> None:
    a, _b, _shut = target
    code, out, err = invoke("127.0.0.11", "--ports", str(a), *QUIET)
    assert code == 0, err
    assert "127.0.0.11" in out and f"{a}/tcp" in out
    assert "1 of 1 hosts up" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.11", "--ports", "70000"], "error: ports: port 70000 is outside 1-65535"),
        (["not a host!"], "error: target:"),
        (["127.0.0.11", "--timeout-ms", "-1"], "error: timeout_ms:"),
        (["127.0.0.11", "--max-concurrent", "0"], "error: max_concurrent:"),
        (["127.0.0.11", "--profile", "warp"], "error: profile:"),
        (["127.0.0.11", "--json", "--csv"], "error: choose one of --json and --csv"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert out == ""


def test_bad_input_from_the_real_command() -> None:
    proc = ronda("127.0.0.11", "--ports", "0")
    assert proc.returncode == 2
    assert proc.stderr == "error: ports: port 0 is outside 1-65535\n"
