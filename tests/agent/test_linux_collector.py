"""The Linux collector against recorded outputs of the real tools (fixtures/linux)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ronda.agent.collectors import linux as L
from ronda.agent.collectors.linux import LinuxCollector, iptables_filters_input, nft_filters_input
from ronda.agent.host import CommandResult
from tests.agent.replay import Commands, ReplayFiles, err, fixture, out, replay_host

NOW = 1_704_880_000.0
OS = "linux"
NOT_BOOTED_WITH_SYSTEMD = err(OS, "debian12_systemctl_no_systemd.txt", 1)


def session_props(session: str) -> tuple[str, ...]:
    return ("loginctl", "show-session", session, "-p", "Name", "-p", "User", "-p", "Type", "-p", "Class",
            "-p", "Desktop", "-p", "State", "-p", "Remote")


def as_user(user: str, uid: int, argv: tuple[str, ...]) -> tuple[str, ...]:
    return ("runuser", "-u", user, "--", "env", f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus", *argv)


SYSTEMCTL = ("systemctl", "is-active", *L.ANTIVIRUS_UNITS)


def ubuntu_laptop() -> tuple[Commands, ReplayFiles]:
    """An Ubuntu 22.04 ThinkPad: LUKS+LVM root, GNOME on Wayland, ufw on, ClamAV running."""
    commands: Commands = {
        L.LSBLK: out(OS, "ubuntu2204_lsblk_luks_lvm.json"),
        L.DPKG: out(OS, "ubuntu2204_dpkg-query.txt"),
        L.SNAP: out(OS, "ubuntu2204_snap_list.txt"),
        L.FLATPAK: out(OS, "ubuntu2204_flatpak_list.txt"),
        L.IP_ADDR: out(OS, "ubuntu2204_ip_addr.json"),
        L.IP_ROUTE: out(OS, "ubuntu2204_ip_route_default.json"),
        L.SS_TCP: out(OS, "ubuntu2204_ss_ltnpH.txt"),
        L.SS_UDP: out(OS, "ubuntu2204_ss_lunpH.txt"),
        L.UFW: out(OS, "ubuntu2204_ufw_active.txt"),
        L.IPTABLES: out(OS, "ubuntu2204_iptables_ufw.txt"),
        L.APT: out(OS, "ubuntu2204_apt_nothing.txt"),
        L.DETECT_VIRT: out(OS, "detect_virt_none.txt", 1),
        L.PS: out(OS, "ubuntu2204_ps.txt"),
        L.LOGINCTL_SESSIONS: out(OS, "ubuntu2204_loginctl_sessions.txt"),
        session_props("2"): out(OS, "ubuntu2204_loginctl_session_2.txt"),
        session_props("c1"): out(OS, "ubuntu2204_loginctl_session_c1.txt"),
        as_user("alice", 1000, L.GNOME_LOCK): out(OS, "gsettings_true.txt"),
        as_user("alice", 1000, L.GNOME_IDLE): out(OS, "gsettings_idle_300.txt"),
        SYSTEMCTL: out(OS, "ubuntu2204_systemctl_clamav_active.txt"),
    }
    lists = [
        "auxfiles", "lock", "partial",
        "archive.ubuntu.com_ubuntu_dists_jammy-updates_InRelease",
        "archive.ubuntu.com_ubuntu_dists_jammy-updates_main_binary-amd64_Packages",
        "security.ubuntu.com_ubuntu_dists_jammy-security_InRelease",
    ]
    files = ReplayFiles(
        files={
            "/etc/os-release": fixture(OS, "ubuntu2204_os-release"),
            "/proc/sys/kernel/osrelease": "6.2.0-39-generic\n",
            "/sys/class/dmi/id/sys_vendor": "LENOVO\n",
            "/sys/class/dmi/id/product_name": "20XW0055GE\n",
            "/sys/class/dmi/id/product_serial": "PF3ABC12\n",
            "/sys/class/dmi/id/chassis_type": "10\n",
            "/proc/cpuinfo": fixture(OS, "ubuntu2204_cpuinfo.txt"),
            "/proc/meminfo": fixture(OS, "ubuntu2204_meminfo.txt"),
            "/proc/self/mounts": fixture(OS, "ubuntu2204_mounts.txt"),
            "/etc/passwd": fixture(OS, "ubuntu2204_passwd.txt"),
            "/sys/class/power_supply/AC/type": "Mains\n",
            "/sys/class/power_supply/BAT0/type": "Battery\n",
            "/sys/class/power_supply/BAT0/scope": "",
        },
        dirs={"/var/lib/apt/lists": lists, "/sys/class/power_supply": ["AC", "BAT0"]},
        mtimes={f"/var/lib/apt/lists/{name}": NOW - 3 * 3600 for name in lists},
    )
    return commands, files


def collector(commands: Commands, files: ReplayFiles, *, euid: int | None = 0) -> LinuxCollector:
    return LinuxCollector(replay_host(commands, files, hostname="thinkpad", euid=euid, now=NOW))


def laptop_with(overrides: Mapping[tuple[str, ...], CommandResult | None], *, euid: int | None = 0,
                files: dict[str, Any] | None = None) -> LinuxCollector:
    commands, replay = ubuntu_laptop()
    for argv, result in overrides.items():
        if result is None:
            commands.pop(argv, None)
        else:
            commands[argv] = result
    replay.files.update(files or {})
    return collector(commands, replay, euid=euid)


# --- the whole report ---------------------------------------------------------------------------


def test_ubuntu_laptop_report_has_every_section_and_all_checks_pass() -> None:
    report = laptop_with({}).collect()

    assert report["os_type"] == "linux"
    assert report["os_version"] == "22.04"
    assert report["hostname"] == "thinkpad"
    assert report["serial_number"] == "PF3ABC12"
    assert report["device_type"] == "laptop"
    hardware = report["hardware"]
    assert hardware["manufacturer"] == "LENOVO"
    assert hardware["cpu_model"] == "11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz"
    assert (hardware["cpu_cores"], hardware["cpu_threads"]) == (4, 8)
    assert hardware["memory_bytes"] == 16069124 * 1024
    assert hardware["disks"] == [{"name": "nvme0n1", "size_bytes": 512110190592, "encrypted": True}]
    assert hardware["os"]["name"] == "Ubuntu 22.04.3 LTS"
    assert hardware["os"]["kernel"] == "6.2.0-39-generic"

    software = report["software"]
    names = {(p["name"], p["source"]) for p in software["packages"]}
    assert ("clamav-daemon", "dpkg") in names and ("slack-desktop", "dpkg") in names  # "hi" = held, installed
    assert ("zoom", "dpkg") not in names  # "rc": removed, only config files left
    assert ("firefox", "snap") in names and ("org.gimp.GIMP", "flatpak") in names
    assert software["sources"] == {"dpkg": 21, "snap": 6, "flatpak": 3}
    assert software["count"] == 30
    openssl = next(p for p in software["packages"] if p["name"] == "openssl")
    assert openssl["version"] == "3.0.2-0ubuntu1.12"

    network = report["network"]
    interfaces = {i["name"]: i for i in network["interfaces"]}
    assert interfaces["lo"]["ips"] == ["127.0.0.1", "::1"] and interfaces["lo"]["mac"] is None
    assert interfaces["wlp0s20f3"]["mac"] == "f4:a4:75:12:34:56"
    assert network["primary_interface"] == "wlp0s20f3"
    assert network["primary_ip"] == "192.168.1.42"
    assert network["primary_mac"] == "f4:a4:75:12:34:56"
    ports = {(p["port"], p["protocol"], p["address"]): p["process"] for p in network["listening_ports"]}
    assert ports[(22, "tcp", "0.0.0.0")] == "sshd"
    assert ports[(22, "tcp", "::")] == "sshd"
    assert ports[(53, "tcp", "127.0.0.53")] == "systemd-resolve"
    assert ports[(5353, "udp", "0.0.0.0")] == "avahi-daemon"

    security = report["security"]
    assert [security[c] for c in ("disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date",
                                  "antivirus_enabled")] == ["pass"] * 5
    details = security["details"]
    assert details["disk_encryption"]["source"] == "lsblk"
    assert details["firewall_enabled"]["source"] == "ufw"
    assert details["screen_lock_enabled"] == {
        "source": "gsettings", "reason": "GNOME locks the screen when it blanks", "user": "alice",
        "desktop": "ubuntu", "session_type": "wayland", "lock_enabled": True, "idle_delay_seconds": 300,
    }
    assert details["os_up_to_date"]["pending_updates"] == 0
    assert details["antivirus_enabled"]["products"] == ["ClamAV"]


def test_identity_for_enrolment_is_cheap_and_names_the_primary_mac() -> None:
    c = laptop_with({})
    identity = c.identity()
    assert identity == {"hostname": "thinkpad", "serial_number": "PF3ABC12", "os_type": "linux",
                        "os_version": "22.04", "mac": "f4:a4:75:12:34:56"}
    assert L.APT not in c.host.runner.calls  # type: ignore[attr-defined]
    assert L.DPKG not in c.host.runner.calls  # type: ignore[attr-defined]


def test_debian_vm_recorded_on_this_kind_of_machine() -> None:
    """Outputs recorded on a Debian 12 KVM guest without systemd as PID 1 (a container-like VM)."""
    commands: Commands = {
        L.LSBLK: out(OS, "debian12_lsblk.json"),
        L.DPKG: out(OS, "debian12_dpkg-query.txt"),
        L.IP_ADDR: out(OS, "debian12_ip_addr.json"),
        L.IP_ROUTE: out(OS, "debian12_ip_route_default.json"),
        L.SS_TCP: out(OS, "debian12_ss_ltnpH.txt"),
        L.SS_UDP: out(OS, "debian12_ss_lunpH.txt"),
        L.APT: out(OS, "debian12_apt_dist-upgrade_security.txt"),
        L.DETECT_VIRT: out(OS, "debian12_detect_virt.txt"),
        L.PS: out(OS, "debian12_ps.txt"),
        L.LOGINCTL_SESSIONS: NOT_BOOTED_WITH_SYSTEMD,
        SYSTEMCTL: NOT_BOOTED_WITH_SYSTEMD,
    }
    files = ReplayFiles(
        files={
            "/etc/os-release": fixture(OS, "debian12_os-release"),
            "/proc/cpuinfo": fixture(OS, "debian12_cpuinfo.txt"),
            "/proc/meminfo": fixture(OS, "debian12_meminfo.txt"),
            "/proc/self/mounts": fixture(OS, "debian12_mounts.txt"),
        },
        dirs={"/var/lib/apt/lists": ["deb.debian.org_debian_dists_bookworm_InRelease"]},
        mtimes={"/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": NOW - 600},
    )
    report = collector(commands, files).collect()
    assert report["os_version"] == "12"
    assert report["device_type"] == "virtual_machine"
    assert report["hardware"]["virtualization"] == "kvm"
    assert report["hardware"]["disks"] == [{"name": "vda", "size_bytes": 274877906944, "encrypted": False}]
    security = report["security"]
    assert security["disk_encryption"] == "fail"
    assert security["firewall_enabled"] == "unknown"  # no firewall tool installed at all
    assert security["screen_lock_enabled"] == "unknown"
    assert security["os_up_to_date"] == "fail"
    assert security["details"]["os_up_to_date"]["pending_security_updates"] == 69
    assert security["details"]["os_up_to_date"]["pending_updates"] == 124
    assert security["antivirus_enabled"] == "fail"
    assert security["details"]["antivirus_enabled"]["source"] == "processes"
    ports = {(p["port"], p["address"]) for p in report["network"]["listening_ports"]}
    assert (5432, "127.0.0.1") in ports and (6379, "::1") in ports and (2024, "0.0.0.0") in ports


# --- disk encryption ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lsblk", "mounts", "expected", "reason_part"),
    [
        ("ubuntu2204_lsblk_luks_lvm.json", "ubuntu2204_mounts.txt", "pass", "root filesystem"),
        ("ubuntu2004_lsblk_luks_strings.json", "ubuntu2204_mounts.txt", "pass", "root filesystem"),
        ("debian11_lsblk_home_luks.json", "debian11_mounts.txt", "pass", "/home"),
        ("ubuntu2204_lsblk_plain.json", "ubuntu2204_mounts.txt", "fail", "neither"),
        # btrfs: lsblk's MOUNTPOINT names /home only; /proc/self/mounts says / is the same partition.
        ("fedora39_lsblk_btrfs.json", "fedora39_mounts.txt", "fail", "neither"),
        ("docker_lsblk.json", "docker_mounts.txt", "unknown", "overlay"),
    ],
)
def test_disk_encryption_follows_the_lsblk_tree(lsblk: str, mounts: str, expected: str, reason_part: str) -> None:
    check = laptop_with({L.LSBLK: out(OS, lsblk)}, files={"/proc/self/mounts": fixture(OS, mounts)}) \
        .check_disk_encryption()
    assert check.result == expected
    assert reason_part in check.reason


def test_disk_encryption_is_unknown_without_lsblk() -> None:
    check = laptop_with({L.LSBLK: None}).check_disk_encryption()
    assert check.result == "unknown" and "lsblk" in check.reason


def test_old_lsblk_string_sizes_are_read_as_numbers() -> None:
    hardware = laptop_with({L.LSBLK: out(OS, "ubuntu2004_lsblk_luks_strings.json")}).hardware()
    assert hardware.disks == [{"name": "sda", "size_bytes": 256060514304, "encrypted": True}]


# --- firewall -----------------------------------------------------------------------------------

UFW_GONE: dict[tuple[str, ...], CommandResult | None] = {L.UFW: None, L.IPTABLES: None}


@pytest.mark.parametrize(
    ("overrides", "euid", "expected", "source"),
    [
        ({}, 0, "pass", "ufw"),
        ({L.UFW: out(OS, "ubuntu2204_ufw_inactive.txt"), L.IPTABLES: out(OS, "ubuntu2204_iptables_docker_only.txt"),
          L.NFT: out(OS, "ubuntu2204_nft_docker_only.txt")}, 0, "fail", "ufw, nftables, iptables"),
        ({L.UFW: err(OS, "ubuntu2204_ufw_not_root.txt", 1), L.IPTABLES: err(OS, "ubuntu2204_iptables_not_root.txt", 4),
          L.NFT: err(OS, "ubuntu2204_nft_not_root.txt", 1)}, 1000, "unknown", None),
        # ufw says inactive, but nft needs root we do not have: undecided, not a fail.
        ({L.UFW: out(OS, "ubuntu2204_ufw_inactive.txt"), L.NFT: err(OS, "ubuntu2204_nft_not_root.txt", 1),
          L.IPTABLES: None}, 1000, "unknown", None),
        ({**UFW_GONE, L.FIREWALLD: out(OS, "fedora39_firewalld_running.txt")}, 0, "pass", "firewalld"),
        ({**UFW_GONE, L.FIREWALLD: err(OS, "fedora39_firewalld_not_running.txt", 252),
          L.NFT: out(OS, "debian12_nft_default_accept.txt")}, 0, "fail", "firewalld, nftables"),
        ({**UFW_GONE, L.NFT: out(OS, "fedora39_nft_firewalld.txt")}, 0, "pass", "nftables"),
        ({**UFW_GONE, L.NFT: out(OS, "debian12_nft_server_drop.txt")}, 0, "pass", "nftables"),
        ({**UFW_GONE, L.NFT: out(OS, "debian12_nft_empty.txt"), L.IPTABLES: out(OS, "debian12_iptables_empty.txt")},
         0, "fail", "nftables, iptables"),
        ({**UFW_GONE, L.IPTABLES: out(OS, "debian12_iptables_fail2ban.txt")}, 0, "pass", "iptables"),
        (UFW_GONE, 0, "unknown", None),
    ],
)
def test_firewall_state_from_ufw_firewalld_nft_iptables(
    overrides: dict[tuple[str, ...], CommandResult | None], euid: int, expected: str, source: str | None
) -> None:
    check = laptop_with(overrides, euid=euid).check_firewall_enabled()
    assert check.result == expected, check
    assert check.source == source


def test_nft_parser_ignores_words_inside_quotes_and_other_hooks() -> None:
    # The docker ruleset drops in FORWARD and logs "drop candidates" in INPUT: neither filters input.
    assert not nft_filters_input(fixture(OS, "ubuntu2204_nft_docker_only.txt"))
    assert nft_filters_input(fixture(OS, "fedora39_nft_firewalld.txt"))  # reached through jumps + final reject
    assert not nft_filters_input(fixture(OS, "debian12_nft_default_accept.txt"))
    assert nft_filters_input(fixture(OS, "debian12_nft_server_drop.txt"))


def test_iptables_parser_follows_jumps_from_input() -> None:
    assert iptables_filters_input(fixture(OS, "ubuntu2204_iptables_ufw.txt"))
    assert iptables_filters_input(fixture(OS, "debian12_iptables_fail2ban.txt"))
    assert not iptables_filters_input(fixture(OS, "ubuntu2204_iptables_docker_only.txt"))
    assert not iptables_filters_input(fixture(OS, "debian12_iptables_empty.txt"))


# --- screen lock --------------------------------------------------------------------------------

KDE_SESSION = {
    L.LOGINCTL_SESSIONS: out(OS, "kubuntu_loginctl_sessions.txt"),
    session_props("3"): out(OS, "kubuntu_loginctl_session_3.txt"),
}


def test_gnome_lock_disabled_fails() -> None:
    check = laptop_with({as_user("alice", 1000, L.GNOME_LOCK): out(OS, "gsettings_false.txt")}) \
        .check_screen_lock_enabled()
    assert check.result == "fail" and "lock-enabled false" in check.reason


def test_gnome_screen_that_never_blanks_fails() -> None:
    check = laptop_with({as_user("alice", 1000, L.GNOME_IDLE): out(OS, "gsettings_idle_0.txt")}) \
        .check_screen_lock_enabled()
    assert check.result == "fail" and check.details["idle_delay_seconds"] == 0


def test_gnome_as_the_session_user_runs_gsettings_directly() -> None:
    check = laptop_with({L.GNOME_LOCK: out(OS, "gsettings_true.txt"), L.GNOME_IDLE: out(OS, "gsettings_idle_300.txt")},
                        euid=1000).check_screen_lock_enabled()
    assert check.result == "pass"


def test_another_users_session_is_unknown_without_root() -> None:
    check = laptop_with({}, euid=1001).check_screen_lock_enabled()
    assert check.result == "unknown" and "alice" in check.reason


def test_gsettings_failure_is_unknown() -> None:
    failed = CommandResult("", "(process:4242): dconf-WARNING **: unable to open file\n", 1)
    check = laptop_with({as_user("alice", 1000, L.GNOME_LOCK): failed}).check_screen_lock_enabled()
    assert check.result == "unknown"


def test_kde_autolock_off_fails() -> None:
    check = laptop_with(KDE_SESSION, files={"/home/alice/.config/kscreenlockerrc":
                                            fixture(OS, "kubuntu_kscreenlockerrc_off.txt")}).check_screen_lock_enabled()
    assert check.result == "fail" and check.source == "kscreenlockerrc"


def test_kde_with_autolock_left_at_its_default_passes() -> None:
    replay_files = {"/home/alice/.config/kscreenlockerrc": fixture(OS, "kubuntu_kscreenlockerrc_greeter_only.txt")}
    check = laptop_with(KDE_SESSION, files=replay_files).check_screen_lock_enabled()
    assert check.result == "pass" and check.details["autolock"] is True


def test_no_desktop_session_is_unknown() -> None:
    check = laptop_with({
        L.LOGINCTL_SESSIONS: out(OS, "server_loginctl_sessions.txt"),
        session_props("5"): out(OS, "server_loginctl_session_5.txt"),
    }).check_screen_lock_enabled()
    assert check.result == "unknown" and "no graphical desktop session" in check.reason


def test_unsupported_desktop_is_unknown_not_a_guess() -> None:
    check = laptop_with({
        L.LOGINCTL_SESSIONS: out(OS, "xfce_loginctl_sessions.txt"),
        session_props("2"): out(OS, "xfce_loginctl_session_2.txt"),
    }).check_screen_lock_enabled()
    assert check.result == "unknown" and "XFCE" in check.reason


def test_without_logind_a_gnome_shell_process_marks_the_session() -> None:
    check = laptop_with({L.LOGINCTL_SESSIONS: NOT_BOOTED_WITH_SYSTEMD}).check_screen_lock_enabled()
    assert check.result == "pass"
    assert check.details["session_type"] == "process"


# --- OS updates ---------------------------------------------------------------------------------


def test_apt_security_updates_fail_with_counts() -> None:
    check = laptop_with({L.APT: out(OS, "ubuntu2204_apt_security.txt")}).check_os_up_to_date()
    assert check.result == "fail"
    assert check.details["pending_security_updates"] == 9
    assert "libssl3" in check.details["security_packages"]


def test_apt_non_security_updates_pass_with_the_pending_count() -> None:
    check = laptop_with({L.APT: out(OS, "ubuntu2204_apt_updates_only.txt")}).check_os_up_to_date()
    assert check.result == "pass"
    assert check.details["pending_updates"] == 2 and check.details["pending_security_updates"] == 0


def test_stale_apt_lists_cannot_prove_up_to_date() -> None:
    commands, files = ubuntu_laptop()
    files.mtimes = {path: NOW - 30 * 86400 for path in files.mtimes}
    check = collector(commands, files).check_os_up_to_date()
    assert check.result == "unknown" and "30 days old" in check.reason
    # ...but stale lists that already show security updates prove they are missing.
    commands[L.APT] = out(OS, "ubuntu2204_apt_security.txt")
    assert collector(commands, files).check_os_up_to_date().result == "fail"


def test_apt_without_lists_or_failing_is_unknown() -> None:
    commands, files = ubuntu_laptop()
    files.dirs["/var/lib/apt/lists"] = ["lock", "partial"]
    assert collector(commands, files).check_os_up_to_date().result == "unknown"
    assert laptop_with({L.APT: err(OS, "apt_error.txt", 100)}).check_os_up_to_date().result == "unknown"


@pytest.mark.parametrize(
    ("name", "expected", "packages"),
    [
        ("fedora39_dnf_security.txt", "fail", 5),
        ("rhel9_dnf_security.txt", "fail", 5),
        ("fedora41_dnf5_security.txt", "fail", 2),
        ("fedora39_dnf_none.txt", "pass", 0),
    ],
)
def test_dnf_security_advisories(name: str, expected: str, packages: int) -> None:
    check = laptop_with({L.APT: None, L.DNF: out(OS, name)}).check_os_up_to_date()
    assert check.result == expected
    assert check.source == "dnf"
    assert check.details["pending_security_updates"] == packages


def test_no_package_manager_is_unknown() -> None:
    assert laptop_with({L.APT: None}).check_os_up_to_date().result == "unknown"


# --- antivirus ----------------------------------------------------------------------------------


def test_antivirus_from_systemd_units() -> None:
    check = laptop_with({SYSTEMCTL: out(OS, "rhel9_systemctl_falcon.txt")}).check_antivirus_enabled()
    assert check.result == "pass" and check.details["products"] == ["CrowdStrike Falcon"]


def test_no_antivirus_unit_and_no_antivirus_process_fails() -> None:
    check = laptop_with({SYSTEMCTL: out(OS, "ubuntu2204_systemctl_none_active.txt", 3),
                         L.PS: out(OS, "debian12_ps.txt")}).check_antivirus_enabled()
    assert check.result == "fail" and check.source == "systemctl, processes"


def test_without_systemd_a_running_clamd_process_passes() -> None:
    check = laptop_with({SYSTEMCTL: NOT_BOOTED_WITH_SYSTEMD}).check_antivirus_enabled()
    assert check.result == "pass" and check.source == "processes"


def test_hidden_processes_make_antivirus_unknown_for_non_root() -> None:
    check = laptop_with({SYSTEMCTL: NOT_BOOTED_WITH_SYSTEMD, L.PS: out(OS, "ubuntu2204_ps_hidepid.txt")},
                        euid=1000).check_antivirus_enabled()
    assert check.result == "unknown" and "hidepid" in check.reason


# --- software, network, hardware variants -------------------------------------------------------


def test_rpm_and_pacman_packages() -> None:
    rpm = laptop_with({L.DPKG: None, L.SNAP: None, L.FLATPAK: None, L.RPM: out(OS, "fedora39_rpm.txt")}).packages()
    assert {p["name"] for p in rpm} == {"filesystem", "bash", "openssl-libs", "gnome-shell", "firefox",
                                        "kernel-core", "firewalld"}  # gpg-pubkey is a key, not software
    pacman = laptop_with({L.DPKG: None, L.SNAP: None, L.FLATPAK: None, L.PACMAN: out(OS, "arch_pacman.txt")}) \
        .packages()
    assert {"name": "linux", "version": "6.6.10.arch1-1", "source": "pacman"} in pacman


def test_rolling_release_uses_build_id() -> None:
    assert laptop_with({}, files={"/etc/os-release": fixture(OS, "arch_os-release")}).os_info().version == "rolling"
    assert laptop_with({}, files={"/etc/os-release": fixture(OS, "fedora39_os-release")}).os_info().version == "39"


def test_listening_ports_fall_back_to_proc_net_tcp_without_ss() -> None:
    c = laptop_with({L.SS_TCP: None, L.SS_UDP: None}, files={
        "/proc/net/tcp": fixture(OS, "debian12_proc_net_tcp.txt"),
        "/proc/net/tcp6": fixture(OS, "debian12_proc_net_tcp6.txt"),
    })
    ports = {(p["port"], p["address"]) for p in c.listening_ports()}
    assert (2024, "0.0.0.0") in ports and (5432, "127.0.0.1") in ports
    assert (4369, "::1") in ports and (6379, "::1") in ports
    assert all(p["protocol"] == "tcp" for p in c.listening_ports())


def test_ss_without_root_lists_ports_without_processes() -> None:
    ports = laptop_with({L.SS_TCP: out(OS, "ubuntu2204_ss_ltnpH_not_root.txt")}, euid=1000).listening_ports()
    tcp = [p for p in ports if p["protocol"] == "tcp"]
    assert {p["port"] for p in tcp} == {53, 22, 631} and all(p["process"] is None for p in tcp)


@pytest.mark.parametrize(
    ("overrides", "dmi", "expected"),
    [
        ({}, {"/sys/class/dmi/id/chassis_type": "3\n"}, "desktop"),
        ({}, {"/sys/class/dmi/id/chassis_type": "23\n"}, "server"),
        ({L.DETECT_VIRT: out(OS, "detect_virt_microsoft.txt")}, {}, "virtual_machine"),
        ({L.DETECT_VIRT: None}, {"/sys/class/dmi/id/sys_vendor": "QEMU\n",
                                 "/sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
                                 "/sys/class/dmi/id/chassis_type": "1\n"}, "virtual_machine"),
        ({}, {"/sys/class/dmi/id/chassis_type": "2\n"}, "laptop"),  # chassis "Unknown", but a battery
    ],
)
def test_device_type_from_chassis_virtualization_and_battery(
    overrides: dict[tuple[str, ...], CommandResult | None], dmi: dict[str, str], expected: str
) -> None:
    assert laptop_with(overrides, files=dmi).hardware().device_type == expected


def test_device_type_is_unknown_without_any_evidence() -> None:
    commands, files = ubuntu_laptop()
    files.files["/sys/class/dmi/id/chassis_type"] = "2\n"
    files.dirs["/sys/class/power_supply"] = ["AC"]
    assert collector(commands, files).hardware().device_type == "unknown"


def test_placeholder_serial_numbers_are_not_reported() -> None:
    hardware = laptop_with({}, files={"/sys/class/dmi/id/product_serial": "To Be Filled By O.E.M.\n"}).hardware()
    assert hardware.serial_number is None


def test_a_parser_crash_costs_one_check_not_the_report() -> None:
    c = laptop_with({L.UFW: None, L.IPTABLES: None})
    c.host.runner.commands[L.NFT] = CommandResult(None, "", 0)  # type: ignore[arg-type, attr-defined]
    report = c.collect()
    assert report["security"]["firewall_enabled"] == "unknown"
    assert "collector failed" in report["security"]["details"]["firewall_enabled"]["reason"]
    assert report["security"]["disk_encryption"] == "pass"
