"""Ronda's built-in scanner against nmap, both measured in the same run.

    .venv/bin/python bench/scan_vs_nmap.py                 # both targets (the second needs root)
    .venv/bin/python bench/scan_vs_nmap.py --only loopback # target 1 only

1. all 65,535 TCP ports of 127.0.0.1 with 40 extra listeners: `ronda scan 127.0.0.1 --ports all`
   (no discovery, detection or profiling) against `nmap -sT -p- -T4 -n -Pn 127.0.0.1`.
2. a /24 in network namespaces (tests/scanner/netlab.py: a bridge, five live hosts, 10 ms delay
   each way = 20 ms RTT and 1% loss; tc netem when the kernel has it, otherwise a userspace wire),
   top 1,000 ports with host discovery: `ronda scan NET --ports "top 1000"` against
   `nmap -sT -T4 -n NET` (both without reverse DNS), run inside the scanner's namespace.

Prints the median wall time of each (whole commands, process start included), the ratio
ronda/nmap (target: <= 1.0) and whether the open-port sets match. Exit status 1: the sets differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "scanner"))
from netlab import Lab, LabUnavailable  # type: ignore[import-not-found]  # noqa: E402

VENV_BIN = Path(sys.executable).parent
RONDA = [str(VENV_BIN / "ronda")] if (VENV_BIN / "ronda").exists() else [sys.executable, "-m", "ronda.cli"]
LEAN = [sys.executable, "-m", "ronda.scanner"]
QUIET = ["--no-detection", "--no-profiling", "--json"]
# the lab: last octet -> open ports (all within the top 1,000)
LAB_HOSTS = {
    10: [22, 80, 443], 23: [25, 110, 143, 993], 57: [3306, 8080], 130: [21, 23, 3389, 5900], 201: [53, 139, 445],
}


Found = dict[str, set[int]]


def nmap_found(xml_text: str) -> Found:
    found: Found = {}
    for host in ET.fromstring(xml_text).iter("host"):
        status = host.find("status")
        if status is None or status.get("state") != "up":
            continue
        address = host.find("address[@addrtype='ipv4']")
        if address is None:
            address = host.find("address")
        assert address is not None
        found[str(address.get("addr"))] = {
            int(str(port.get("portid")))
            for port in host.iter("port")
            if (state := port.find("state")) is not None and state.get("state") == "open"
        }
    return found


def ronda_found(json_text: str) -> Found:
    data = json.loads(json_text)
    return {h["ip"]: {p["port"] for p in h["ports"] if p["state"] == "open"} for h in data["hosts"]}


CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], label: str = "") -> tuple[float, str]:
    """Wall time and stdout of one command; its CPU time (with its children's) goes to CPU[label]."""
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    elapsed = time.perf_counter() - started
    CPU.setdefault(label, []).append(_children_cpu() - cpu)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


class Listeners:
    """40 listeners on 127.0.0.1 that accept and close, so repeated scans never fill a backlog."""

    def __init__(self, count: int = 40) -> None:
        rng = random.Random(40)
        self.socks: list[socket.socket] = []
        for port in rng.sample(range(10000, 60000), count * 2):
            if len(self.socks) == count:
                break
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen(1024)
            sock.setblocking(False)
            self.socks.append(sock)
        self.ports = {s.getsockname()[1] for s in self.socks}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        for sock in self.socks:
            sel.register(sock, selectors.EVENT_READ)
        while not self.done.is_set():
            for key, _ in sel.select(0.1):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    conn.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def _union(runs: list[Found]) -> Found:
    out: Found = {}
    for run in runs:
        for ip, ports in run.items():
            out.setdefault(ip, set()).update(ports)
    return out


def _intersection(runs: list[Found]) -> Found:
    out: Found = {ip: set(ports) for ip, ports in runs[0].items()}
    for run in runs[1:]:
        out = {ip: ports & run[ip] for ip, ports in out.items() if ip in run}
    return out


def _within(small: Found, big: Found) -> bool:
    return all(ip in big and ports <= big[ip] for ip, ports in small.items())


def compare(name: str, runs: dict[str, list[float]], found: dict[str, list[Found]]) -> bool:
    """Print the timings; the open-port sets match when what one tool found in every run the other
    found too (ports other processes open and close between runs on a shared machine are named)."""
    nmap_time = statistics.median(runs["nmap"])
    print(f"\n== {name}")
    for label, times in runs.items():
        median = statistics.median(times)
        ratio = "" if label == "nmap" else f"   ratio {median / nmap_time:.2f}x nmap"
        print(f"  {label:<28} median {median:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)}){ratio}")
    print("  CPU time (user + system, the command and its children), median:")
    for label in runs:
        spent = CPU.get(name.split(":")[0] + label, [])
        if spent:
            print(f"    {label:<26} {statistics.median(spent):6.2f} s")
    n_all, n_every = _union(found["nmap"]), _intersection(found["nmap"])
    same = True
    for label, got in found.items():
        if label == "nmap":
            continue
        r_all, r_every = _union(got), _intersection(got)
        match = _within(r_every, n_all) and _within(n_every, r_all)
        same = same and match
        print(f"  open-port sets {label} vs nmap: {'MATCH' if match else 'DIFFER'}")
        for ip in sorted(set(r_all) | set(n_all)):
            seen = r_all.get(ip, set()) | n_all.get(ip, set())
            transient = seen - (r_every.get(ip, set()) & n_every.get(ip, set()))
            if transient:
                print(f"    {ip}: not open in every run (other processes' listeners?): {sorted(transient)}")
    stable = n_every
    print(f"  hosts up: {len(stable)}, open ports in every nmap run: {sum(len(p) for p in stable.values())}")
    return same


def loopback(repeats: int) -> bool:
    listeners = Listeners()
    try:
        target = "127.0.0.1"
        cmds = {
            "nmap": ["nmap", "-sT", "-p-", "-T4", "-n", "-Pn", target, "-oX", "-"],
            "ronda scan": [*RONDA, "scan", target, "--ports", "all", "--no-discovery", *QUIET],
            "python -m ronda.scanner": [*LEAN, target, "--ports", "all", "--no-discovery", *QUIET],
        }
        runs: dict[str, list[float]] = {k: [] for k in cmds}
        found: dict[str, list[Found]] = {k: [] for k in cmds}
        for _ in range(repeats):
            for label, cmd in cmds.items():
                elapsed, out = timed(cmd, "target 1" + label)
                runs[label].append(elapsed)
                found[label].append(nmap_found(out) if label == "nmap" else ronda_found(out))
        same = compare("target 1: 127.0.0.1, all 65,535 TCP ports, 40 listeners", runs, found)
        for label, results in found.items():
            missed = [sorted(listeners.ports - r.get(target, set())) for r in results]
            if any(missed):
                same = False
                print(f"  {label} missed some of the 40 listeners: {missed}")
        print("  the 40 listeners: " + ("found by every run of both" if same else "see above"))
        return same
    finally:
        listeners.close()


def namespaces(repeats: int) -> bool | None:
    try:
        lab = Lab(LAB_HOSTS, delay_ms=10, loss=0.01)
        with lab:
            inside = lab.exec_prefix()
            cmds = {
                "nmap": [*inside, "nmap", "-sT", "-T4", "-n", lab.network, "-oX", "-"],
                "ronda scan": [*inside, *RONDA, "scan", lab.network, "--ports", "top 1000", *QUIET],
            }
            runs: dict[str, list[float]] = {k: [] for k in cmds}
            found: dict[str, list[Found]] = {k: [] for k in cmds}
            for _ in range(repeats):
                for label, cmd in cmds.items():
                    elapsed, out = timed(cmd, "target 2" + label)
                    runs[label].append(elapsed)
                    found[label].append(nmap_found(out) if label == "nmap" else ronda_found(out))
            same = compare(
                f"target 2: {lab.network} in namespaces, 5 live hosts, 20 ms RTT, 1% loss ({lab.mode}), "
                "top 1,000 ports",
                runs, found,
            )
            exact = all(r == found["nmap"][0] for results in found.values() for r in results)
            print(f"  every run of both found exactly the same hosts and ports: {'yes' if exact else 'NO'}")
            return same and exact
    except LabUnavailable as exc:
        print(f"\n== target 2 skipped: {exc}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["loopback", "namespaces"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool for target 1 (median reported)")
    parser.add_argument("--lab-repeats", type=int, default=2, help="runs per tool for target 2")
    args = parser.parse_args()
    if not shutil.which("nmap"):
        raise SystemExit("nmap is not installed (apt-get install -y nmap)")
    print(f"machine: {os.cpu_count()} cores; ronda: {' '.join(RONDA)}")
    results: list[bool | None] = []
    if args.only in (None, "loopback"):
        results.append(loopback(args.repeats))
    if args.only in (None, "namespaces"):
        if os.geteuid() != 0:
            print("\n== target 2 skipped: network namespaces need root (run this script as root)")
        else:
            results.append(namespaces(args.lab_repeats))
    sys.exit(1 if any(r is False for r in results) else 0)


if __name__ == "__main__":
    main()
