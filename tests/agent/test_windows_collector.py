"""The Windows collector against recorded Windows PowerShell 5.1 outputs (fixtures/windows).

ConvertTo-Json in Windows PowerShell 5.1 writes CRLF, aligns nested values under their key,
escapes & < > ' as \\u00xx, prints enums as numbers and dates as \\/Date(ms)\\/, and prints one
object (not an array) when there is one result. The fixtures keep all of that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ronda.agent.collectors.windows import WindowsCollector, powershell_argv
from ronda.agent.host import CommandResult
from tests.agent.replay import Commands, ReplayFiles, err, out, replay_host

OS = "windows"


def ps(name: str) -> tuple[str, ...]:
    return powershell_argv(name)


def latitude() -> Commands:
    """A Dell Latitude on Windows 11 Pro 23H2: BitLocker on, firewall on, Defender on, up to date."""
    return {
        ps("os"): out(OS, "win11_os.json"),
        ps("bios"): out(OS, "win11_bios.json"),
        ps("computer"): out(OS, "win11_computer.json"),
        ps("processor"): out(OS, "win11_processor.json"),
        ps("volumes"): out(OS, "win11_volumes.json"),
        ps("bitlocker"): out(OS, "bitlocker_on.json"),
        ps("firewall"): out(OS, "firewall_all_on.json"),
        ps("defender"): out(OS, "defender_on.json"),
        ps("screen_lock"): out(OS, "screen_lock_user_secure.json"),
        ps("updates"): out(OS, "updates_none.json"),
        ps("software"): out(OS, "software.json"),
        ps("tcp_listen"): out(OS, "tcp_listen.json"),
        ps("adapters"): out(OS, "adapters.json"),
        ps("addresses"): out(OS, "addresses.json"),
        ps("default_route"): out(OS, "default_route.json"),
    }


def windows_with(overrides: Mapping[str, CommandResult | None] | None = None) -> WindowsCollector:
    commands = latitude()
    for name, result in (overrides or {}).items():
        if result is None:
            commands.pop(ps(name), None)
        else:
            commands[ps(name)] = result
    return WindowsCollector(replay_host(commands, ReplayFiles(), hostname="LT-ALICE", euid=None, machine="AMD64"))


def test_latitude_report_has_every_section_and_all_checks_pass() -> None:
    report = windows_with().collect()
    assert report["os_type"] == "windows"
    assert report["os_version"] == "10.0.22631"
    assert report["device_name"] == "LT-ALICE"
    assert report["serial_number"] == "7XK2QR3"
    assert report["device_type"] == "laptop"
    hardware = report["hardware"]
    assert (hardware["manufacturer"], hardware["model"]) == ("Dell Inc.", "Latitude 7430")
    assert (hardware["cpu_cores"], hardware["cpu_threads"]) == (10, 12)
    assert hardware["memory_bytes"] == 16883011584
    assert hardware["os"]["name"] == "Microsoft Windows 11 Pro" and hardware["os"]["build"] == "22631"
    assert hardware["disks"] == [
        {"name": "C:", "size_bytes": 510770802688, "file_system": "NTFS", "encrypted": True},
        {"name": "D:", "size_bytes": 1000186310656, "file_system": "NTFS", "encrypted": False},
    ]

    packages = report["software"]["packages"]
    names = [p["name"] for p in packages]
    assert "AT&T Global Network Client" in names  # "AT\u0026T" in PowerShell's JSON
    assert names.count("Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.38.33130") == 1
    assert report["software"]["count"] == 7
    teams = next(p for p in packages if p["name"] == "Microsoft Teams classic")
    assert teams["version"] is None and teams["source"] == "registry"

    network = report["network"]
    interfaces = {i["name"]: i for i in network["interfaces"]}
    assert interfaces["Wi-Fi"]["mac"] == "f4:a4:75:ab:cd:ef"
    assert interfaces["Wi-Fi"]["ips"] == ["fe80::8d2a:5b1c:7e3f:1a2b", "192.168.1.57"]
    assert interfaces["Loopback Pseudo-Interface 1"]["ips"] == ["::1", "127.0.0.1"]
    assert (network["primary_interface"], network["primary_ip"]) == ("Wi-Fi", "192.168.1.57")
    ports = {(p["port"], p["address"]): p["process"] for p in network["listening_ports"]}
    assert ports[(445, "::")] == "System" and ports[(135, "0.0.0.0")] == "svchost"
    assert ports[(6463, "127.0.0.1")] == "Discord"

    security = report["security"]
    assert [security[c] for c in ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date",
                                  "antivirus_enabled")] == ["pass"] * 5
    defender = security["details"]["antivirus_enabled"]["defender"]
    assert defender["signature_updated"] == "2024-01-10T08:00:00Z"


@pytest.mark.parametrize(
    ("bitlocker", "expected", "reason"),
    [
        (out(OS, "bitlocker_on.json"), "pass", "protects C:"),
        (out(OS, "bitlocker_suspended.json"), "fail", "suspended"),
        (out(OS, "bitlocker_off.json"), "fail", "FullyDecrypted"),
        (out(OS, "bitlocker_encrypting.json"), "fail", "EncryptionInProgress"),
    ],
)
def test_bitlocker_on_the_system_drive(bitlocker: CommandResult, expected: str, reason: str) -> None:
    check = windows_with({"bitlocker": bitlocker}).check_disk_encryption()
    assert (check.result, check.source) == (expected, "Get-BitLockerVolume")
    assert reason in check.reason


@pytest.mark.parametrize(
    ("shell", "expected"),
    [("bitlocker_shell_on.txt", "pass"), ("bitlocker_shell_off.txt", "fail"), ("bitlocker_shell_home.txt", "fail")],
)
def test_bitlocker_without_admin_rights_uses_the_shell_property(shell: str, expected: str) -> None:
    check = windows_with({"bitlocker": err(OS, "bitlocker_access_denied.txt", 1),
                          "bitlocker_shell": out(OS, shell)}).check_disk_encryption()
    assert (check.result, check.source) == (expected, "Shell BitLockerProtection")


def test_bitlocker_unreadable_is_unknown() -> None:
    check = windows_with({"bitlocker": err(OS, "bitlocker_access_denied.txt", 1)}).check_disk_encryption()
    assert check.result == "unknown" and "Access is denied" in check.reason


@pytest.mark.parametrize(
    ("name", "expected"),
    [("firewall_all_on.json", "pass"), ("firewall_public_off.json", "fail"),
     ("firewall_private_allows_inbound.json", "fail")],
)
def test_firewall_profiles(name: str, expected: str) -> None:
    check = windows_with({"firewall": out(OS, name)}).check_firewall_enabled()
    assert check.result == expected
    assert set(check.details["profiles"]) == {"Domain", "Private", "Public"}


def test_firewall_unreadable_is_unknown() -> None:
    assert windows_with({"firewall": None}).check_firewall_enabled().result == "unknown"


@pytest.mark.parametrize(
    ("name", "expected", "reason"),
    [
        ("screen_lock_user_secure.json", "pass", "password-protected screen saver"),
        ("screen_lock_machine_policy.json", "pass", "900 seconds"),
        ("screen_lock_group_policy.json", "pass", "group policy"),
        ("screen_lock_user_none.json", "fail", "no screen saver is chosen"),
        ("screen_lock_user_no_password.json", "fail", "does not ask for a password"),
        ("screen_lock_no_user.json", "unknown", "no user is signed in"),
    ],
)
def test_screen_saver_lock_policy(name: str, expected: str, reason: str) -> None:
    check = windows_with({"screen_lock": out(OS, name)}).check_screen_lock_enabled()
    assert check.result == expected and reason in check.reason


@pytest.mark.parametrize(
    ("updates", "expected", "pending", "security"),
    [
        (out(OS, "updates_security.json"), "fail", 3, 1),
        (out(OS, "updates_definitions_only.json"), "pass", 1, 0),
        (out(OS, "updates_none.json"), "pass", 0, 0),
    ],
)
def test_windows_update(updates: CommandResult, expected: str, pending: int, security: int) -> None:
    check = windows_with({"updates": updates}).check_os_up_to_date()
    assert check.result == expected
    assert (check.details["pending_updates"], check.details["pending_security_updates"]) == (pending, security)


def test_windows_update_search_failure_is_unknown() -> None:
    check = windows_with({"updates": err(OS, "updates_offline.txt", 1)}).check_os_up_to_date()
    assert check.result == "unknown" and "0x8024402C" in check.reason


@pytest.mark.parametrize(
    ("defender", "products", "expected", "source"),
    [
        (out(OS, "defender_passive.json"), out(OS, "av_products_sophos.json"), "pass", "SecurityCenter2"),
        (out(OS, "defender_off.json"), out(OS, "av_products_defender_off.json"), "fail", "SecurityCenter2"),
        (out(OS, "defender_off.json"), err(OS, "av_products_server.txt", 1), "fail", "Get-MpComputerStatus"),
        (None, err(OS, "av_products_server.txt", 1), "unknown", None),
    ],
)
def test_antivirus(defender: CommandResult | None, products: CommandResult, expected: str,
                   source: str | None) -> None:
    check = windows_with({"defender": defender, "av_products": products}).check_antivirus_enabled()
    assert (check.result, check.source) == (expected, source)


@pytest.mark.parametrize(
    ("overrides", "device_type", "serial"),
    [
        ({"computer": out(OS, "hyperv_computer.json"), "bios": out(OS, "hyperv_bios.json")}, "virtual_machine",
         "9378-5219-4093-2571-6601-4180-53"),
        ({"computer": out(OS, "server2022_computer.json"), "os": out(OS, "server2022_os.json"),
          "processor": out(OS, "server2022_processor.json")}, "server", "7XK2QR3"),
        ({"computer": out(OS, "desktop_computer.json"), "bios": out(OS, "oem_bios.json")}, "desktop", None),
    ],
)
def test_device_types_and_serials(overrides: dict[str, Any], device_type: str, serial: str | None) -> None:
    hardware = windows_with(overrides).hardware()
    assert (hardware.device_type, hardware.serial_number) == (device_type, serial)


def test_two_socket_server_sums_cores() -> None:
    hardware = windows_with({"processor": out(OS, "server2022_processor.json")}).hardware()
    assert (hardware.cpu_cores, hardware.cpu_threads) == (32, 32)


def test_without_powershell_every_check_is_unknown() -> None:
    collector = WindowsCollector(replay_host({}, ReplayFiles(), hostname="x", euid=None))
    report = collector.collect()
    assert {report["security"][c] for c in ("disk_encryption", "firewall_enabled", "screen_lock_enabled",
                                            "os_up_to_date", "antivirus_enabled")} == {"unknown"}
    assert report["software"]["count"] == 0 and report["os_version"] is None
