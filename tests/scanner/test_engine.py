"""The scan engine against real sockets on 127.x addresses."""

import asyncio
import resource
import time

import pytest

from ronda.scanner import ScanEvent, ScanInputError, ScanOptions, ScanResult, run_scan
from tests.scanner.listeners import Listeners, child_pids, closed_port, open_fds, wildcard_listeners


def opts(targets: list[str], ports: str, **kw: object) -> ScanOptions:
    # the engine alone: no service detection, no profiling
    base: dict[str, object] = {"enable_service_detection": False, "enable_profiling": False}
    base.update(kw)
    return ScanOptions(targets=targets, ports=ports, **base)  # type: ignore[arg-type]


def open_ports(result: ScanResult) -> dict[str, list[int]]:
    return {h.ip: [p.port for p in h.ports] for h in result.hosts}


async def test_exact_open_ports_on_several_hosts() -> None:
    with Listeners() as listeners:
        a1 = listeners.open("127.0.0.2")
        a2 = listeners.open("127.0.0.2", silent=True)  # accepts and never speaks: still open
        b1 = listeners.open("127.0.0.3")
        shut = closed_port("127.0.0.2")
        ports = ",".join(str(p) for p in (a1, a2, b1, shut))
        events: list[ScanEvent] = []
        result = await run_scan(opts(["127.0.0.2-4"], ports), events.append)
    assert open_ports(result) == {"127.0.0.2": sorted([a1, a2]), "127.0.0.3": [b1], "127.0.0.4": []}
    assert result.hosts_total == 3 and result.ports_per_host == 4
    assert result.probes_sent >= 12
    assert all(p.state == "open" and p.protocol == "tcp" for h in result.hosts for p in h.ports)
    found = sorted((e.data["ip"], e.data["port"]) for e in events if e.kind == "port_found")
    assert found == sorted([("127.0.0.2", a1), ("127.0.0.2", a2), ("127.0.0.3", b1)])
    assert {e.data["ip"] for e in events if e.kind == "host_found"} == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    progress = [e.data for e in events if e.kind == "progress"]
    percents = [p["progress_percent"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert progress[-1]["ports_found"] == 3 and progress[-1]["hosts_found"] == 3
    assert set(progress[-1]) == {
        "progress_percent", "hosts_done", "hosts_total", "probes_sent", "hosts_found", "ports_found", "eta_seconds",
    }
    assert ScanResult.from_dict(result.to_dict()) == result


async def test_worker_processes_split_a_large_sweep() -> None:
    with Listeners() as listeners:
        ours = {listeners.open("127.0.0.5") for _ in range(6)}
        system = wildcard_listeners()  # this machine's services listening on every address
        before = child_pids()
        result = await run_scan(opts(["127.0.0.5"], "1-65535", processes=2, discovery=False))
        system_after = wildcard_listeners()
    found = set(open_ports(result)["127.0.0.5"])
    # exactly ours and the machine's steady services; one coming or going meanwhile is tolerated
    assert ours | (system & system_after) <= found <= ours | system | system_after
    assert result.probes_sent == 65535
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or soft >= 1 << 20  # raised at the start of the scan
    assert child_pids() - before == set()


async def test_silent_ports_are_retried_then_given_up() -> None:
    # a listener whose accept queue is full drops SYNs: the port stays silent (filtered)
    with Listeners() as listeners:
        live = listeners.open("127.0.0.6")
        import socket

        full = socket.socket()
        full.bind(("127.0.0.6", 0))
        full.listen(0)
        silent_port = full.getsockname()[1]
        fillers = []
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.6", silent_port))
            fillers.append(f)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        result = await run_scan(opts(["127.0.0.6"], f"{live},{silent_port}", timeout_ms=150, retries=2))
        took = time.monotonic() - started
        for f in [full, *fillers]:
            f.close()
    assert open_ports(result) == {"127.0.0.6": [live]}
    # three attempts (1 + 2 retries) of at most 150 ms each, and not much more
    assert 0.3 <= took < 3.0


async def test_rate_cap_spaces_probes() -> None:
    started = time.monotonic()
    result = await run_scan(opts(["127.0.0.7"], "1-40", max_rate=100.0, discovery=False))
    took = time.monotonic() - started
    assert result.probes_sent == 40
    assert took >= 0.35  # 40 probes at 100/s


async def test_stealth_profile_sets_a_rate() -> None:
    from ronda.scanner import PROFILES

    assert PROFILES["stealth"].max_rate is not None and PROFILES["stealth"].max_concurrent <= 32


@pytest.mark.parametrize("processes", [1, 2])
async def test_cancellation_stops_promptly_and_leaks_nothing(processes: int) -> None:
    await asyncio.sleep(0.1)
    fds, kids = open_fds(), child_pids()
    # 16 hosts x 65535 ports: far too long to finish; slowed by a rate cap
    task = asyncio.create_task(
        run_scan(opts(["127.0.1.0/28"], "all", discovery=False, processes=processes, max_rate=50000.0))
    )
    await asyncio.sleep(0.6)
    assert not task.done()
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2.0
    await asyncio.sleep(0.2)
    assert child_pids() - kids == set()
    assert open_fds() <= fds


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timeout_ms": -5}, "timeout_ms"),
        ({"timeout_ms": 10**9}, "timeout_ms"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"retries": 99}, "retries"),
        ({"max_rate": 0}, "max_rate"),
        ({"profile": "turbo"}, "profile"),
        ({"engine": "masscan"}, "engine"),
        ({"ports": "0-10"}, "ports"),
        ({"targets": ["300.1.1.1"]}, "target"),
        ({"targets": ["10.0.0.0/8"]}, "target"),
    ],
)
async def test_bad_options(changes: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"targets": ["127.0.0.1"], "ports": "80"}
    base.update(changes)
    with pytest.raises(ScanInputError) as caught:
        await run_scan(ScanOptions(**base))  # type: ignore[arg-type]
    assert caught.value.field == field


async def test_ipv6_loopback_and_host_names() -> None:
    with Listeners() as listeners:
        port = listeners.open("::1")
        result = await run_scan(opts(["::1"], f"{port},1"))
        assert open_ports(result) == {"::1": [port]}
        v4 = listeners.open("127.0.0.1")
        named = await run_scan(opts(["localhost"], str(v4)))
    assert [(h.ip, h.hostname, [p.port for p in h.ports]) for h in named.hosts] == [("127.0.0.1", "localhost", [v4])]


async def test_a_whole_loopback_network_with_discovery() -> None:
    with Listeners() as listeners:
        ports = {ip: listeners.open(ip) for ip in ("127.0.2.1", "127.0.2.77", "127.0.2.254")}
        spec = ",".join(str(p) for p in sorted(set(ports.values())))
        started = time.monotonic()
        result = await run_scan(opts(["127.0.2.0/24"], spec))
    assert time.monotonic() - started < 10
    assert result.hosts_total == 254 and len(result.hosts) == 254  # loopback addresses are always up
    found = {h.ip: [p.port for p in h.ports] for h in result.hosts if h.ports}
    assert found == {ip: [port] for ip, port in ports.items()}


def test_rtt_estimator_sets_adaptive_timeouts() -> None:
    from ronda.scanner.sweep import Sweeper, SweepJob, _Host

    sweeper = Sweeper(SweepJob(hosts=[], ports=[], timeout=1.25, min_timeout=0.1, initial_timeout=1.0), print)
    fresh, near, far = _Host("10.0.0.1", None), _Host("10.0.0.2", None), _Host("10.0.0.3", None)
    assert sweeper._timeout(fresh) == 1.0  # nothing known yet: the initial timeout
    for _ in range(20):
        near.sample(0.020)
        far.sample(0.300)
    assert sweeper._timeout(near) == 0.1  # 20 ms, steady: srtt + 4 * rttvar is under the floor
    assert 0.3 <= sweeper._timeout(far) <= 0.45
    far.sample(2.0)  # a slow answer widens the timeout, up to the ceiling
    assert sweeper._timeout(far) == 1.25
    sweeper.overall.sample(0.05)
    assert sweeper._timeout(fresh) == pytest.approx(0.15)  # a silent host borrows the scan-wide 50 ms (+ 4 x 25)
