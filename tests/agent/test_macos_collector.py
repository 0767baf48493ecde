"""The macOS collector against recorded outputs of the real tools (fixtures/macos)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ronda.agent.collectors import macos as M
from ronda.agent.collectors.macos import MacCollector
from ronda.agent.host import CommandResult
from tests.agent.replay import Commands, ReplayFiles, err, fixture_bytes, out, replay_host

OS = "macos"
XPROTECT = M.XPROTECT_PLISTS[0]


def as_console_user(argv: tuple[str, ...]) -> tuple[str, ...]:
    return ("launchctl", "asuser", "501", "sudo", "-u", "alice", *argv)


def macbook() -> tuple[Commands, ReplayFiles]:
    """A MacBook Pro (M1 Pro) on Sonoma 14.2.1, FileVault on, firewall on, up to date, alice at the console."""
    commands: Commands = {
        M.SW_VERS: out(OS, "sonoma_sw_vers.txt"),
        M.UNAME: out(OS, "sonoma_uname.txt"),
        M.COMPUTER_NAME: out(OS, "scutil_computername.txt"),
        M.HARDWARE: out(OS, "mbp_m1_hardware.json"),
        M.STORAGE: out(OS, "mbp_storage.json"),
        M.APPLICATIONS: out(OS, "applications.json"),
        M.FDESETUP: out(OS, "fdesetup_on.txt"),
        M.SOCKETFILTERFW: out(OS, "socketfilterfw_enabled.txt"),
        M.CONSOLE_USER: out(OS, "console_alice.txt"),
        as_console_user(M.SCREEN_LOCK): err(OS, "sysadminctl_immediate.txt", 0),
        M.SOFTWAREUPDATE: err(OS, "softwareupdate_none_stderr.txt", 0, stdout="Software Update Tool\n\n"
                                                                          "Finding available software\n"),
        M.LSOF: out(OS, "lsof_listen.txt"),
        M.IFCONFIG: out(OS, "ifconfig.txt"),
        M.ROUTE: out(OS, "route_default.txt"),
    }
    files = ReplayFiles(files={
        XPROTECT: fixture_bytes(OS, "xprotect_Info.plist"),
        M.SOFTWARE_UPDATE_PREFS: fixture_bytes(OS, "softwareupdate_prefs.plist"),
    })
    return commands, files


def mac_with(overrides: Mapping[tuple[str, ...], CommandResult | None] | None = None, *, euid: int = 0,
             files: dict[str, Any] | None = None) -> MacCollector:
    commands, replay = macbook()
    for argv, result in (overrides or {}).items():
        if result is None:
            commands.pop(argv, None)
        else:
            commands[argv] = result
    for path, value in (files or {}).items():
        if value is None:
            replay.files.pop(path, None)
        else:
            replay.files[path] = value
    return MacCollector(replay_host(commands, replay, hostname="alices-mbp", euid=euid, machine="arm64"))


def test_macbook_report_has_every_section_and_all_checks_pass() -> None:
    report = mac_with().collect()
    assert report["os_type"] == "macos"
    assert report["os_version"] == "14.2.1"
    assert report["device_name"] == "Alice\u2019s MacBook Pro"
    assert report["serial_number"] == "C02XL0GTJG5J"
    assert report["device_type"] == "laptop"
    hardware = report["hardware"]
    assert hardware["manufacturer"] == "Apple Inc."
    assert hardware["model"] == "MacBook Pro (MacBookPro18,3)"
    assert hardware["cpu_model"] == "Apple M1 Pro" and hardware["cpu_cores"] == 8
    assert hardware["memory_bytes"] == 16 * 2**30
    assert hardware["os"] == {"name": "macOS", "version": "14.2.1", "build": "23C71", "kernel": "23.2.0"}
    boot, backup = hardware["disks"]
    assert boot["mount_point"] == "/" and boot["encrypted"] is True and boot["size_bytes"] == 494384795648
    assert backup["mount_point"] == "/Volumes/Backup" and backup["encrypted"] is None

    packages = report["software"]["packages"]
    assert {"Safari", "Google Chrome", "Slack", "zoom.us", "Terminal"} == {p["name"] for p in packages}
    assert report["software"]["count"] == 5  # Safari appears twice (cryptex copy), counted once
    chrome = next(p for p in packages if p["name"] == "Google Chrome")
    assert chrome["version"] == "120.0.6099.216" and chrome["source"] == "applications"

    network = report["network"]
    interfaces = {i["name"]: i for i in network["interfaces"]}
    assert interfaces["lo0"]["ips"] == ["127.0.0.1", "::1", "fe80::1"]
    assert interfaces["en0"]["mac"] == "a4:83:e7:12:34:56" and interfaces["en0"]["state"] == "active"
    assert network["primary_interface"] == "en0" and network["primary_ip"] == "192.168.1.23"
    ports = {(p["port"], p["address"]): p["process"] for p in network["listening_ports"]}
    assert ports[(22, "::")] == "launchd" and ports[(22, "0.0.0.0")] == "launchd"
    assert ports[(5432, "::1")] == "postgres" and ports[(5432, "127.0.0.1")] == "postgres"
    assert ports[(61942, "127.0.0.1")] == "Code H"  # lsof escapes the space in "Code Helper"

    security = report["security"]
    assert [security[c] for c in ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date",
                                  "antivirus_enabled")] == ["pass"] * 5
    assert security["details"]["screen_lock_enabled"]["delay_seconds"] == 0
    assert security["details"]["antivirus_enabled"]["xprotect_version"] == "2178"


@pytest.mark.parametrize(
    ("name", "expected", "reason"),
    [
        ("fdesetup_on.txt", "pass", "FileVault is on"),
        ("fdesetup_off.txt", "fail", "FileVault is off"),
        ("fdesetup_deferred.txt", "fail", "next restart"),
        ("fdesetup_encrypting.txt", "fail", "37.52"),
    ],
)
def test_filevault(name: str, expected: str, reason: str) -> None:
    check = mac_with({M.FDESETUP: out(OS, name)}).check_disk_encryption()
    assert (check.result, check.source) == (expected, "fdesetup")
    assert reason in check.reason


def test_filevault_unreadable_is_unknown() -> None:
    assert mac_with({M.FDESETUP: None}).check_disk_encryption().result == "unknown"
    broken = CommandResult("", "Error: cannot read status\n", 1)
    assert mac_with({M.FDESETUP: broken}).check_disk_encryption().result == "unknown"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("socketfilterfw_enabled.txt", "pass"), ("socketfilterfw_block_all.txt", "pass"),
     ("socketfilterfw_disabled.txt", "fail")],
)
def test_application_firewall(name: str, expected: str) -> None:
    assert mac_with({M.SOCKETFILTERFW: out(OS, name)}).check_firewall_enabled().result == expected


def test_application_firewall_missing_is_unknown() -> None:
    assert mac_with({M.SOCKETFILTERFW: None}).check_firewall_enabled().result == "unknown"


def test_screen_lock_read_as_the_console_user() -> None:
    delayed = mac_with({as_console_user(M.SCREEN_LOCK): err(OS, "sysadminctl_300.txt", 0)}).check_screen_lock_enabled()
    assert delayed.result == "pass" and delayed.details["delay_seconds"] == 300
    off = mac_with({as_console_user(M.SCREEN_LOCK): err(OS, "sysadminctl_off.txt", 0)}).check_screen_lock_enabled()
    assert off.result == "fail"
    # Running as alice herself: no launchctl/sudo needed.
    own = mac_with({M.SCREEN_LOCK: err(OS, "sysadminctl_off.txt", 0)}, euid=501).check_screen_lock_enabled()
    assert own.result == "fail"


def test_screen_lock_falls_back_to_the_screensaver_preference() -> None:
    check = mac_with({as_console_user(M.SCREEN_LOCK): None,
                      as_console_user(M.ASK_FOR_PASSWORD): out(OS, "defaults_askforpassword_1.txt")}) \
        .check_screen_lock_enabled()
    assert (check.result, check.source) == ("pass", "defaults")
    missing = mac_with({as_console_user(M.SCREEN_LOCK): None,
                        as_console_user(M.ASK_FOR_PASSWORD): err(OS, "defaults_askforpassword_missing.txt", 1)}) \
        .check_screen_lock_enabled()
    assert missing.result == "unknown"


def test_screen_lock_at_the_login_window_is_unknown() -> None:
    check = mac_with({M.CONSOLE_USER: out(OS, "console_loginwindow.txt")}).check_screen_lock_enabled()
    assert check.result == "unknown" and "no user" in check.reason


def test_screen_lock_of_another_user_without_root_is_unknown() -> None:
    assert mac_with(euid=502).check_screen_lock_enabled().result == "unknown"


def test_a_configuration_profile_decides_screen_lock() -> None:
    check = mac_with(
        {M.CONSOLE_USER: out(OS, "console_loginwindow.txt")},
        files={f"{M.MANAGED_PREFS}/com.apple.screensaver.plist": fixture_bytes(OS, "managed_screensaver.plist")},
    ).check_screen_lock_enabled()
    assert (check.result, check.source) == ("pass", "configuration profile")
    assert check.details["ask_for_password_delay"] == 5


def test_pending_updates_fail() -> None:
    check = mac_with({M.SW_VERS: out(OS, "sonoma142_sw_vers.txt"),
                      M.SOFTWAREUPDATE: out(OS, "softwareupdate_pending.txt")}).check_os_up_to_date()
    assert check.result == "fail"
    assert check.details["pending_updates"] == 2
    assert check.details["restart_required"] is True
    assert "macOS Sonoma 14.2.1" in check.details["updates"]


def test_a_major_upgrade_on_offer_is_not_a_missing_patch() -> None:
    check = mac_with({M.SW_VERS: out(OS, "ventura_sw_vers.txt"),
                      M.SOFTWAREUPDATE: out(OS, "softwareupdate_major_only.txt")}).check_os_up_to_date()
    assert check.result == "pass"
    assert check.details["major_upgrades_available"] == ["macOS Sonoma 14.2.1"]


def test_software_update_offline_is_unknown() -> None:
    header = "Software Update Tool\n\nFinding available software\n"
    offline = err(OS, "softwareupdate_offline_stderr.txt", 1, stdout=header)
    check = mac_with({M.SOFTWAREUPDATE: offline}).check_os_up_to_date()
    assert check.result == "unknown" and "connect" in check.reason


def test_xprotect_without_automatic_definition_updates_fails() -> None:
    check = mac_with(files={M.SOFTWARE_UPDATE_PREFS: fixture_bytes(OS, "softwareupdate_prefs_no_data_install.plist")}) \
        .check_antivirus_enabled()
    assert check.result == "fail" and check.details["automatic_definition_updates"] is False


def test_missing_xprotect_is_unknown() -> None:
    assert mac_with(files={XPROTECT: None}).check_antivirus_enabled().result == "unknown"


@pytest.mark.parametrize(
    ("hardware", "device_type", "cores", "cpu"),
    [
        ("imac_intel_hardware.json", "desktop", 8, "8-Core Intel Core i7 @ 3.8 GHz"),
        ("vm_hardware.json", "virtual_machine", 4, "Apple M2 (Virtual)"),
    ],
)
def test_hardware_variants(hardware: str, device_type: str, cores: int, cpu: str) -> None:
    result = mac_with({M.HARDWARE: out(OS, hardware)}).hardware()
    assert (result.device_type, result.cpu_cores, result.cpu_model) == (device_type, cores, cpu)
