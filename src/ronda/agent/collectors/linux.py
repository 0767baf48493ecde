"""Linux: /etc/os-release, /sys/class/dmi, /proc, lsblk, ip, ss, dpkg/rpm/pacman/snap/flatpak,
ufw/firewalld/nftables/iptables, GNOME/KDE settings, apt/dnf, systemd units and processes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ronda.agent.collectors.base import Check, Collector, Hardware, OsInfo
from ronda.agent.collectors.parsing import (
    as_int,
    clean_serial,
    clean_text,
    load_json,
    normalize_mac,
    parse_env_file,
    split_host_port,
    strip_quoted,
)
from ronda.agent.host import Host

LSBLK = ("lsblk", "-J", "-b", "-o", "NAME,TYPE,FSTYPE,MOUNTPOINT,SIZE")
DPKG = ("dpkg-query", "-W", "-f=${db:Status-Abbrev}\t${Package}\t${Version}\n")
RPM = ("rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n")
PACMAN = ("pacman", "-Q")
SNAP = ("snap", "list")
FLATPAK = ("flatpak", "list", "--app", "--columns=application,version")
IP_ADDR = ("ip", "-j", "addr")
IP_ROUTE = ("ip", "-j", "route", "show", "default")
SS_TCP = ("ss", "-ltnpH")
SS_UDP = ("ss", "-lunpH")
UFW = ("ufw", "status")
FIREWALLD = ("firewall-cmd", "--state")
NFT = ("nft", "list", "ruleset")
IPTABLES = ("iptables", "-S")
APT = ("apt-get", "-s", "dist-upgrade")
DNF = ("dnf", "updateinfo", "list", "--security")
DETECT_VIRT = ("systemd-detect-virt", "--vm")
PS = ("ps", "-e", "-o", "uid=,comm=")
LOGINCTL_SESSIONS = ("loginctl", "list-sessions", "--no-legend")
GNOME_LOCK = ("gsettings", "get", "org.gnome.desktop.screensaver", "lock-enabled")
GNOME_IDLE = ("gsettings", "get", "org.gnome.desktop.session", "idle-delay")

# systemd units and process names (comm, at most 15 characters) of antivirus products.
ANTIVIRUS_UNITS: dict[str, str] = {
    "clamav-daemon": "ClamAV",
    "clamd@scan": "ClamAV",
    "clamd": "ClamAV",
    "mdatp": "Microsoft Defender for Endpoint",
    "falcon-sensor": "CrowdStrike Falcon",
    "sophos-spl": "Sophos Protection for Linux",
    "sav-protect": "Sophos Anti-Virus",
    "eset_rtp": "ESET Server Security",
    "esets": "ESET File Security",
    "sentinelone": "SentinelOne",
    "ds_agent": "Trend Micro Deep Security",
    "kesl": "Kaspersky Endpoint Security",
    "bdsec": "Bitdefender GravityZone",
    "cylancesvc": "Cylance",
}
ANTIVIRUS_PROCESSES: dict[str, str] = {
    "clamd": "ClamAV",
    "wdavdaemon": "Microsoft Defender for Endpoint",
    "falcon-sensor": "CrowdStrike Falcon",
    "sophos_threat_d": "Sophos Protection for Linux",
    "savd": "Sophos Anti-Virus",
    "esets_daemon": "ESET File Security",
    "eset_rtp": "ESET Server Security",
    "s1-agent": "SentinelOne",
    "ds_agent": "Trend Micro Deep Security",
    "kesl": "Kaspersky Endpoint Security",
    "bdsecd": "Bitdefender GravityZone",
    "cylancesvc": "Cylance",
}
# Process names of desktop shells, for hosts without logind.
DESKTOP_PROCESSES = {"gnome-shell": "GNOME", "plasmashell": "KDE", "kwin_wayland": "KDE", "kwin_x11": "KDE",
                     "xfce4-session": "XFCE", "cinnamon": "X-Cinnamon", "mate-session": "MATE"}
# SMBIOS chassis types (DMI spec, 7.4.1).
LAPTOP_CHASSIS = {8, 9, 10, 14, 30, 31, 32}
DESKTOP_CHASSIS = {3, 4, 5, 6, 7, 13, 15, 16, 24, 34, 35, 36}
SERVER_CHASSIS = {17, 23, 25, 28, 29}
VM_VENDORS = ("qemu", "kvm", "vmware", "virtualbox", "innotek", "xen", "bochs", "parallels", "amazon ec2",
              "google compute engine", "microsoft corporation virtual", "openstack", "hvm domu", "cloud hypervisor")
APT_LISTS = "/var/lib/apt/lists"
STALE_LISTS_SECONDS = 7 * 86400


@dataclass
class Session:
    user: str
    uid: int | None
    desktop: str
    kind: str  # x11, wayland, or "process" when found from the process list


class LinuxCollector(Collector):
    os_type = "linux"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._hypervisor_flag = False

    # --- identity and hardware ---------------------------------------------------------------

    def os_info(self) -> OsInfo:
        text = self.read("/etc/os-release") or self.read("/usr/lib/os-release") or ""
        release = parse_env_file(text)
        kernel = clean_text(self.read("/proc/sys/kernel/osrelease"))
        return OsInfo(
            name=release.get("PRETTY_NAME") or release.get("NAME"),
            version=release.get("VERSION_ID") or release.get("BUILD_ID"),
            build=release.get("VERSION_CODENAME") or None,
            kernel=kernel,
        )

    def device_name(self) -> str:
        info = parse_env_file(self.read("/etc/machine-info") or "")
        return info.get("PRETTY_HOSTNAME") or self.host.hostname

    def _dmi(self, name: str) -> str | None:
        return clean_text(self.read(f"/sys/class/dmi/id/{name}"))

    def hardware(self) -> Hardware:
        hardware = Hardware(
            manufacturer=self._dmi("sys_vendor"),
            model=self._dmi("product_name"),
            serial_number=clean_serial(self.read("/sys/class/dmi/id/product_serial")),
        )
        self._cpu(hardware)
        meminfo = self.read("/proc/meminfo") or ""
        match = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
        hardware.memory_bytes = int(match.group(1)) * 1024 if match else None
        hardware.disks = self._disks()
        self._device_type(hardware)
        return hardware

    def _cpu(self, hardware: Hardware) -> None:
        cpuinfo = self.read("/proc/cpuinfo") or ""
        processors = 0
        cores: set[tuple[str, str]] = set()
        physical = core = ""
        for line in cpuinfo.splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "processor":
                processors += 1
            elif key in ("model name", "Model", "Hardware", "cpu model") and not hardware.cpu_model and value:
                hardware.cpu_model = " ".join(value.split())
            elif key == "physical id":
                physical = value
            elif key == "core id":
                core = value
                cores.add((physical, core))
        hardware.cpu_threads = processors or None
        hardware.cpu_cores = len(cores) or hardware.cpu_threads
        self._hypervisor_flag = bool(re.search(r"^flags\s*:.*\bhypervisor\b", cpuinfo, re.MULTILINE))

    def _device_type(self, hardware: Hardware) -> None:
        virt = self.run(*DETECT_VIRT)
        if virt is not None and virt.ok and virt.stdout.strip() not in ("", "none"):
            hardware.virtualization = virt.stdout.strip()
        else:
            identity = " ".join(filter(None, [hardware.manufacturer, hardware.model])).lower()
            if any(vendor in identity for vendor in VM_VENDORS):
                hardware.virtualization = hardware.model or hardware.manufacturer
            elif virt is None and self._hypervisor_flag:
                hardware.virtualization = "hypervisor (cpu flag)"
        if hardware.virtualization:
            hardware.device_type, hardware.device_type_source = "virtual_machine", "virtualization"
            return
        chassis = as_int(self.read("/sys/class/dmi/id/chassis_type"))
        if chassis in LAPTOP_CHASSIS:
            hardware.device_type = "laptop"
        elif chassis in DESKTOP_CHASSIS:
            hardware.device_type = "desktop"
        elif chassis in SERVER_CHASSIS:
            hardware.device_type = "server"
        if hardware.device_type != "unknown":
            hardware.device_type_source = f"dmi chassis type {chassis}"
            return
        supplies = self.host.files.list_dir("/sys/class/power_supply") or []
        for supply in supplies:
            kind = clean_text(self.read(f"/sys/class/power_supply/{supply}/type"))
            scope = clean_text(self.read(f"/sys/class/power_supply/{supply}/scope"))
            if kind == "Battery" and scope != "Device":
                hardware.device_type, hardware.device_type_source = "laptop", f"battery {supply}"
                return

    def _lsblk(self) -> list[dict[str, Any]] | None:
        result = self.run(*LSBLK)
        if result is None or not result.ok:
            return None
        data = load_json(result.stdout)
        if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
            return None
        return [node for node in data["blockdevices"] if isinstance(node, dict)]

    def _disks(self) -> list[dict[str, Any]]:
        disks = []
        for node in self._lsblk() or []:
            if node.get("type") != "disk" or str(node.get("name", "")).startswith(("zram", "ram", "loop")):
                continue
            size = as_int(node.get("size"))
            disks.append(
                {
                    "name": node.get("name"),
                    "size_bytes": size,
                    "encrypted": any(n.get("type") == "crypt" for n in _descendants(node)),
                }
            )
        return disks

    # --- software --------------------------------------------------------------------------------

    def packages(self) -> list[dict[str, Any]]:
        packages: list[dict[str, Any]] = []
        dpkg = self.run(*DPKG, timeout=60)
        if dpkg is not None and dpkg.ok:
            for line in dpkg.stdout.splitlines():
                parts = line.split("\t")
                if len(parts) == 3 and len(parts[0]) >= 2 and parts[0][1] == "i":
                    packages.append({"name": parts[1], "version": parts[2], "source": "dpkg"})
        rpm = self.run(*RPM, timeout=60)
        if rpm is not None and rpm.ok:
            for line in rpm.stdout.splitlines():
                name, sep, version = line.partition("\t")
                if sep and name and name != "gpg-pubkey":
                    packages.append({"name": name, "version": version, "source": "rpm"})
        pacman = self.run(*PACMAN, timeout=60)
        if pacman is not None and pacman.ok:
            for line in pacman.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2:
                    packages.append({"name": parts[0], "version": parts[1], "source": "pacman"})
        snap = self.run(*SNAP)
        if snap is not None and snap.ok:
            for line in snap.stdout.splitlines()[1:]:
                parts = line.split()
                if len(parts) >= 2:
                    packages.append({"name": parts[0], "version": parts[1], "source": "snap"})
        flatpak = self.run(*FLATPAK)
        if flatpak is not None and flatpak.ok:
            for line in flatpak.stdout.splitlines():
                app, _, version = line.partition("\t")
                if app and app != "Application ID":
                    packages.append({"name": app.strip(), "version": version.strip() or None, "source": "flatpak"})
        return packages

    # --- network ---------------------------------------------------------------------------------

    def interfaces(self) -> list[dict[str, Any]]:
        result = self.run(*IP_ADDR)
        data = load_json(result.stdout) if result is not None and result.ok else None
        if isinstance(data, list):
            interfaces = []
            for link in data:
                if not isinstance(link, dict) or not link.get("ifname"):
                    continue
                ips = [a["local"] for a in link.get("addr_info") or [] if isinstance(a, dict) and a.get("local")]
                interfaces.append(
                    {
                        "name": link["ifname"],
                        "mac": normalize_mac(link.get("address")),
                        "ips": ips,
                        "state": str(link.get("operstate", "")).lower() or None,
                    }
                )
            return interfaces
        # Without iproute2: names and MACs from sysfs, no addresses.
        interfaces = []
        for name in self.host.files.list_dir("/sys/class/net") or []:
            interfaces.append(
                {
                    "name": name,
                    "mac": normalize_mac(self.read(f"/sys/class/net/{name}/address")),
                    "ips": [],
                    "state": clean_text(self.read(f"/sys/class/net/{name}/operstate")),
                }
            )
        return interfaces

    def primary_interface(self) -> str | None:
        result = self.run(*IP_ROUTE)
        routes = load_json(result.stdout) if result is not None and result.ok else None
        for route in routes if isinstance(routes, list) else []:
            if isinstance(route, dict) and route.get("dev"):
                return str(route["dev"])
        return None

    def listening_ports(self) -> list[dict[str, Any]]:
        ports: list[dict[str, Any]] = []
        seen: set[tuple[int, str, str]] = set()
        for argv, protocol in ((SS_TCP, "tcp"), (SS_UDP, "udp")):
            result = self.run(*argv)
            if result is None or not result.ok:
                if protocol == "tcp":
                    ports.extend(self._proc_net_tcp(seen))
                continue
            for line in result.stdout.splitlines():
                parts = line.split(None, 5)
                if len(parts) < 5:
                    continue
                local = split_host_port(parts[3])
                if local is None:
                    continue
                process = None
                if len(parts) == 6:
                    match = re.search(r'users:\(\("([^"]+)"', parts[5])
                    process = match.group(1) if match else None
                key = (local[1], protocol, local[0])
                if key not in seen:
                    seen.add(key)
                    ports.append({"port": local[1], "protocol": protocol, "address": local[0], "process": process})
        return ports

    def _proc_net_tcp(self, seen: set[tuple[int, str, str]]) -> list[dict[str, Any]]:
        ports = []
        for path, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
            for line in (self.read(path) or "").splitlines()[1:]:
                fields = line.split()
                if len(fields) < 4 or fields[3] != "0A":  # 0A: LISTEN
                    continue
                address_hex, _, port_hex = fields[1].partition(":")
                if len(address_hex) != width:
                    continue
                address = _proc_address(address_hex)
                key = (int(port_hex, 16), "tcp", address)
                if key not in seen:
                    seen.add(key)
                    ports.append({"port": key[0], "protocol": "tcp", "address": address, "process": None})
        return ports

    # --- posture checks ------------------------------------------------------------------------

    def check_disk_encryption(self) -> Check:
        tree = self._lsblk()
        if tree is None:
            return Check.unknown("lsblk is not available or failed")
        mounts = _mounts(self.read("/proc/self/mounts") or self.read("/proc/mounts") or "")
        root_fs = mounts.get("/", ("", ""))[1]
        if root_fs in ("overlay", "aufs", "tmpfs", "rootfs") and not _find_mount(tree, "/"):
            return Check.unknown(f"the root filesystem is {root_fs} (a container?); its disk is not visible", "lsblk")
        verdicts: dict[str, bool | None] = {}
        for mountpoint in ("/", "/home"):
            if mountpoint == "/home" and "/home" not in mounts and not _find_mount(tree, "/home"):
                continue
            verdicts[mountpoint] = _mount_encrypted(tree, mountpoint, mounts)
        root = verdicts.get("/")
        home = verdicts.get("/home")
        details = {"root_encrypted": root, "home_encrypted": home}
        if root:
            return Check.passed("the root filesystem is on a dm-crypt (LUKS) device", "lsblk", **details)
        if home:
            return Check.passed("the /home filesystem is on a dm-crypt (LUKS) device", "lsblk", **details)
        if root is None:
            return Check.unknown("the device holding / was not found in lsblk's tree", "lsblk", **details)
        if "/home" in verdicts and home is None:
            return Check.unknown("the device holding /home was not found in lsblk's tree", "lsblk", **details)
        return Check.failed("neither / nor /home is on an encrypted (dm-crypt) device", "lsblk", **details)

    def check_firewall_enabled(self) -> Check:
        verdicts: dict[str, tuple[str, str]] = {}
        ufw = self.run(*UFW)
        if ufw is not None:
            if re.search(r"^Status: active", ufw.stdout, re.MULTILINE):
                verdicts["ufw"] = ("active", "ufw is active")
            elif re.search(r"^Status: inactive", ufw.stdout, re.MULTILINE):
                verdicts["ufw"] = ("inactive", "ufw is inactive")
            else:
                verdicts["ufw"] = ("unknown", _why(ufw.output, "ufw status failed"))
        firewalld = self.run(*FIREWALLD)
        if firewalld is not None:
            state = " ".join(firewalld.output.split())  # "not running" comes on stderr, exit 252
            if state == "running":
                verdicts["firewalld"] = ("active", "firewalld is running")
            elif state == "not running":
                verdicts["firewalld"] = ("inactive", "firewalld is not running")
            else:
                verdicts["firewalld"] = ("unknown", _why(firewalld.output, "firewall-cmd --state failed"))
        nft = self.run(*NFT)
        if nft is not None:
            if nft.ok:
                filtering = nft_filters_input(nft.stdout)
                verdicts["nftables"] = (
                    ("active", "nftables has an input hook that drops or rejects")
                    if filtering
                    else ("inactive", "nftables has no input filtering")
                )
            else:
                verdicts["nftables"] = ("unknown", _why(nft.output, "nft list ruleset failed"))
        iptables = self.run(*IPTABLES)
        if iptables is not None:
            if iptables.ok:
                verdicts["iptables"] = (
                    ("active", "iptables INPUT drops or rejects")
                    if iptables_filters_input(iptables.stdout)
                    else ("inactive", "iptables INPUT accepts everything")
                )
            else:
                verdicts["iptables"] = ("unknown", _why(iptables.output, "iptables -S failed"))
        details = {"tools": {tool: {"state": state, "reason": why} for tool, (state, why) in verdicts.items()}}
        for tool, (state, why) in verdicts.items():
            if state == "active":
                return Check.passed(why, tool, **details)
        undecided = [f"{tool}: {why}" for tool, (state, why) in verdicts.items() if state == "unknown"]
        if undecided:
            return Check.unknown("; ".join(undecided), None, **details)
        if verdicts:
            return Check.failed("; ".join(why for _, why in verdicts.values()), ", ".join(verdicts), **details)
        return Check.unknown("no firewall tool (ufw, firewalld, nft, iptables) is installed", None, **details)

    def check_screen_lock_enabled(self) -> Check:
        session = self._desktop_session()
        if session is None:
            return Check.unknown("no graphical desktop session is running")
        desktop = session.desktop.upper()
        details = {"user": session.user, "desktop": session.desktop, "session_type": session.kind}
        if "KDE" in desktop or "PLASMA" in desktop:
            return self._kde_lock(session, details)
        if any(name in desktop for name in ("GNOME", "UBUNTU", "UNITY", "BUDGIE", "POP", "ZORIN")):
            return self._gnome_lock(session, details)
        return Check.unknown(f"reading the screen lock of the {session.desktop or 'unnamed'} desktop is not supported",
                             None, **details)

    def _gnome_lock(self, session: Session, details: dict[str, Any]) -> Check:
        lock = self._as_user(session, GNOME_LOCK)
        if isinstance(lock, str):
            return Check.unknown(lock, "gsettings", **details)
        if lock is None:
            return Check.unknown("gsettings is not installed", None, **details)
        value = lock.stdout.strip()
        if not lock.ok or value not in ("true", "false"):
            return Check.unknown(_why(lock.output, "gsettings failed"), "gsettings", **details)
        details["lock_enabled"] = value == "true"
        if value == "false":
            return Check.failed("GNOME screen lock is disabled (lock-enabled false)", "gsettings", **details)
        idle = self._as_user(session, GNOME_IDLE)
        if not isinstance(idle, str) and idle is not None and idle.ok:
            match = re.fullmatch(r"(?:uint32\s+)?(\d+)", idle.stdout.strip())
            if match:
                details["idle_delay_seconds"] = int(match.group(1))
                if int(match.group(1)) == 0:
                    return Check.failed("the screen never blanks (idle-delay 0), so it never locks", "gsettings",
                                        **details)
        return Check.passed("GNOME locks the screen when it blanks", "gsettings", **details)

    def _kde_lock(self, session: Session, details: dict[str, Any]) -> Check:
        home = _home_of(self.read("/etc/passwd") or "", session.user)
        if home is None:
            return Check.unknown(f"the home directory of {session.user} is unknown", None, **details)
        path = f"{home}/.config/kscreenlockerrc"
        text = self.read(path)
        if text is None:
            if self.host.files.list_dir(f"{home}/.config") is None:
                return Check.unknown(f"{home}/.config is not readable", None, **details)
            text = ""
        daemon = _ini_section(text, "Daemon")
        autolock = daemon.get("Autolock", "true").strip().lower()
        details["autolock"] = autolock == "true"
        details["timeout_minutes"] = as_int(daemon.get("Timeout", "5"))
        if autolock == "false":
            return Check.failed("KDE automatic screen locking is off (Autolock=false)", "kscreenlockerrc", **details)
        if details["timeout_minutes"] == 0:
            return Check.failed("KDE screen locking has no timeout (Timeout=0)", "kscreenlockerrc", **details)
        return Check.passed("KDE locks the screen automatically", "kscreenlockerrc", **details)

    def _as_user(self, session: Session, argv: tuple[str, ...]) -> Any:
        """Run a per-user settings command as the session's user: a result, None, or why it cannot run."""
        if session.uid is not None and session.uid == self.host.euid:
            return self.run(*argv)
        if not self.host.is_root:
            return f"the desktop session belongs to {session.user}; reading its settings needs root or that user"
        bus = f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{session.uid}/bus" if session.uid is not None else ""
        prefix = ("runuser", "-u", session.user, "--", "env", *([bus] if bus else []))
        return self.run(*prefix, *argv)

    def _desktop_session(self) -> Session | None:
        listing = self.run(*LOGINCTL_SESSIONS)
        if listing is not None and listing.ok:
            sessions = []
            for line in listing.stdout.splitlines():
                parts = line.split()
                if not parts:
                    continue
                show = self.run("loginctl", "show-session", parts[0], "-p", "Name", "-p", "User", "-p", "Type",
                                "-p", "Class", "-p", "Desktop", "-p", "State", "-p", "Remote")
                if show is None or not show.ok:
                    continue
                props = {}
                for prop in show.stdout.splitlines():
                    key, sep, value = prop.partition("=")
                    if sep:
                        props[key] = value
                if props.get("Type") in ("x11", "wayland", "mir") and props.get("Class", "user") == "user":
                    sessions.append(props)
            sessions.sort(key=lambda p: p.get("State") != "active")
            if sessions:
                chosen = sessions[0]
                return Session(chosen.get("Name", ""), as_int(chosen.get("User")), chosen.get("Desktop", ""),
                               chosen.get("Type", ""))
            return None
        # No logind: look for a desktop shell among the processes.
        for uid, name in self._processes() or []:
            if name in DESKTOP_PROCESSES:
                user = _user_of(self.read("/etc/passwd") or "", uid)
                if user:
                    return Session(user, uid, DESKTOP_PROCESSES[name], "process")
        return None

    def _processes(self) -> list[tuple[int | None, str]] | None:
        result = self.run(*PS)
        if result is not None and result.ok:
            rows = []
            for line in result.stdout.splitlines():
                uid, _, name = line.strip().partition(" ")
                if name:
                    rows.append((as_int(uid), name.strip()))
            return rows
        pids = [p for p in self.host.files.list_dir("/proc") or [] if p.isdigit()]
        if not pids:
            return None
        rows = []
        for pid in pids:
            comm = self.read(f"/proc/{pid}/comm")
            status = self.read(f"/proc/{pid}/status") or ""
            match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
            if comm:
                rows.append((int(match.group(1)) if match else None, comm.strip()))
        return rows

    def check_os_up_to_date(self) -> Check:
        apt = self.run(*APT, timeout=120)
        if apt is not None:
            if not apt.ok:
                return Check.unknown(_why(apt.output, "apt-get -s dist-upgrade failed"), "apt")
            pending, security = apt_pending(apt.stdout)
            age = self._apt_lists_age()
            details: dict[str, Any] = {
                "pending_updates": len(pending),
                "pending_security_updates": len(security),
                "security_packages": security[:50],
                "package_lists_age_days": None if age is None else round(age / 86400, 1),
            }
            if security:
                return Check.failed(f"{len(security)} security updates are pending", "apt", **details)
            if age is None:
                return Check.unknown("apt has no package lists (apt-get update never ran)", "apt", **details)
            if age > STALE_LISTS_SECONDS:
                return Check.unknown(
                    f"apt's package lists are {age / 86400:.0f} days old, so pending updates are not known", "apt",
                    **details,
                )
            return Check.passed("no security updates are pending", "apt", **details)
        dnf = self.run(*DNF, timeout=180)
        if dnf is not None:
            if not dnf.ok:
                return Check.unknown(_why(dnf.output, "dnf updateinfo failed"), "dnf")
            advisories = dnf_security_advisories(dnf.stdout)
            packages = sorted({package for _, package in advisories})
            details = {
                "pending_security_updates": len(packages),
                "advisories": sorted({advisory for advisory, _ in advisories})[:50],
                "security_packages": packages[:50],
            }
            if packages:
                return Check.failed(f"{len(packages)} packages have pending security updates", "dnf", **details)
            return Check.passed("no security updates are pending", "dnf", **details)
        return Check.unknown("no supported package manager (apt, dnf) is installed")

    def _apt_lists_age(self) -> float | None:
        names = self.host.files.list_dir(APT_LISTS) or []
        stamps = [
            self.host.files.mtime(f"{APT_LISTS}/{name}")
            for name in names
            if name.endswith(("InRelease", "_Release")) or "_Packages" in name
        ]
        newest = max((s for s in stamps if s is not None), default=None)
        return None if newest is None else max(0.0, self.host.now - newest)

    def check_antivirus_enabled(self) -> Check:
        units = tuple(ANTIVIRUS_UNITS)
        systemctl = self.run("systemctl", "is-active", *units)
        states: list[str] | None = None
        if systemctl is not None:
            lines = systemctl.stdout.split()
            if len(lines) == len(units):
                states = lines
        if states is not None:
            active = [unit for unit, state in zip(units, states, strict=True) if state == "active"]
            if active:
                products = sorted({ANTIVIRUS_UNITS[u] for u in active})
                return Check.passed(f"{', '.join(products)} is running", "systemctl", units=active,
                                    products=products)
        processes = self._processes()
        if processes is None:
            if states is not None:
                return Check.failed("no known antivirus service is active", "systemctl")
            return Check.unknown("neither systemd nor the process list is available")
        found = sorted({ANTIVIRUS_PROCESSES[name] for _, name in processes if name in ANTIVIRUS_PROCESSES})
        if found:
            return Check.passed(f"{', '.join(found)} is running", "processes", products=found)
        if not self.host.is_root and not any(uid not in (None, self.host.euid) for uid, _ in processes):
            return Check.unknown("other users' processes are hidden (hidepid), so a running antivirus may be missed",
                                 "processes")
        source = "systemctl, processes" if states is not None else "processes"
        return Check.failed("no known antivirus daemon is running", source, checked=sorted(ANTIVIRUS_PROCESSES))


# --- parsers (pure, tested directly) ---------------------------------------------------------------


def _descendants(node: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for child in node.get("children") or []:
        if isinstance(child, dict):
            yield child
            yield from _descendants(child)


def _paths_to(nodes: list[dict[str, Any]], match: Any, trail: tuple[dict[str, Any], ...] = ()) -> Iterable[
    tuple[dict[str, Any], ...]
]:
    for node in nodes:
        path = (*trail, node)
        if match(node):
            yield path
        yield from _paths_to([c for c in node.get("children") or [] if isinstance(c, dict)], match, path)


def _node_mountpoints(node: dict[str, Any]) -> list[str]:
    points = node.get("mountpoints")
    if isinstance(points, list):
        return [p for p in points if isinstance(p, str)]
    point = node.get("mountpoint")
    return [point] if isinstance(point, str) else []


def _find_mount(tree: list[dict[str, Any]], mountpoint: str) -> list[tuple[dict[str, Any], ...]]:
    return list(_paths_to(tree, lambda n: mountpoint in _node_mountpoints(n)))


def _mount_encrypted(tree: list[dict[str, Any]], mountpoint: str, mounts: dict[str, tuple[str, str]]) -> bool | None:
    """True when every lsblk path to the device mounted there passes through a crypt device."""
    paths = _find_mount(tree, mountpoint)
    if not paths and mountpoint in mounts:
        source = mounts[mountpoint][0]
        name = source.rsplit("/", 1)[-1]
        if source.startswith("/dev/") and name:
            paths = list(_paths_to(tree, lambda n: n.get("name") == name))
    if not paths:
        return None
    return all(any(n.get("type") == "crypt" for n in path) for path in paths)


def _mounts(text: str) -> dict[str, tuple[str, str]]:
    """mountpoint -> (source, fstype) from /proc/self/mounts (the last mount wins)."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts[fields[1].replace("\\040", " ")] = (fields[0], fields[2])
    return mounts


def nft_filters_input(ruleset: str) -> bool:
    """Whether an ip/ip6/inet chain hooked on input drops by policy or reaches a drop/reject rule."""
    chains: dict[tuple[str, str], dict[str, Any]] = {}
    stack: list[tuple[str, str]] = []  # ("table", "inet filter") / ("chain", name) / ("block", "")
    table = ""
    for raw in ruleset.splitlines():
        line = strip_quoted(raw.strip())
        opens, closes = line.count("{"), line.count("}")
        if line.startswith("table ") and opens:
            table = " ".join(line[6:].split("{")[0].split())
            stack.append(("table", table))
            continue
        if line.startswith("chain ") and opens and stack and stack[-1][0] == "table":
            name = line[6:].split("{")[0].strip()
            chains[(table, name)] = {"hook": None, "policy": None, "verdict": False, "jumps": set()}
            stack.append(("chain", name))
            continue
        if stack and stack[-1][0] == "chain":
            chain = chains[(table, stack[-1][1])]
            hook = re.search(r"\bhook (\w+)", line)
            if line.startswith("type ") and hook:
                chain["hook"] = hook.group(1)
                policy = re.search(r"\bpolicy (\w+)", line)
                chain["policy"] = policy.group(1) if policy else None
            elif line and line != "}":
                if re.search(r"\b(drop|reject)\b", line):
                    chain["verdict"] = True
                chain["jumps"].update(re.findall(r"\b(?:jump|goto)\s+([\w.-]+)", line))
        for _ in range(max(0, opens - closes)):
            stack.append(("block", ""))
        for _ in range(max(0, closes - opens)):
            if stack:
                stack.pop()
    for (table_name, _), chain in chains.items():
        family = table_name.split()[0] if table_name else ""
        if chain["hook"] != "input" or family not in ("ip", "ip6", "inet"):
            continue
        if chain["policy"] == "drop":
            return True
        seen: set[str] = set()
        todo = [chain]
        while todo:
            current = todo.pop()
            if current["verdict"]:
                return True
            for target in current["jumps"]:
                if target not in seen and (table_name, target) in chains:
                    seen.add(target)
                    todo.append(chains[(table_name, target)])
    return False


def iptables_filters_input(rules: str) -> bool:
    """Whether INPUT has a DROP policy or reaches a DROP/REJECT rule (iptables -S output)."""
    targets: dict[str, set[str]] = {}
    policy = ""
    for line in rules.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "-P" and parts[1] == "INPUT":
            policy = parts[2]
        elif len(parts) >= 2 and parts[0] == "-A":
            for flag in ("-j", "-g", "--jump", "--goto"):
                if flag in parts:
                    index = parts.index(flag)
                    if index + 1 < len(parts):
                        targets.setdefault(parts[1], set()).add(parts[index + 1])
    if policy in ("DROP", "REJECT"):
        return True
    seen = {"INPUT"}
    todo = ["INPUT"]
    while todo:
        for target in targets.get(todo.pop(), set()):
            if target in ("DROP", "REJECT"):
                return True
            if target not in seen and target in targets:
                seen.add(target)
                todo.append(target)
    return False


def apt_pending(simulation: str) -> tuple[list[str], list[str]]:
    """(all packages to upgrade, those coming from a -security suite) from `apt-get -s` output."""
    pending, security = [], []
    for line in simulation.splitlines():
        match = re.match(r"^Inst (\S+)(?: \[[^\]]*\])? \((\S+) (.*)\)", line)
        if not match:
            continue
        pending.append(match.group(1))
        if "-security" in match.group(3) or "Debian-Security" in match.group(3):
            security.append(match.group(1))
    return pending, security


def dnf_security_advisories(output: str) -> list[tuple[str, str]]:
    """(advisory, package) pairs from `dnf updateinfo list --security` (dnf4 and dnf5 layouts)."""
    pairs = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].endswith("/Sec."):  # dnf4: ID Severity/Sec. package
            pairs.append((parts[0], parts[2]))
        elif len(parts) >= 4 and parts[1] == "security":  # dnf5: ID Type Severity Package Issued
            pairs.append((parts[0], parts[3]))
    return pairs


def _proc_address(hex_address: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _why(output: str, fallback: str) -> str:
    text = " ".join(output.split())
    return text[:300] if text else fallback


def _passwd(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 6]


def _home_of(passwd: str, user: str) -> str | None:
    return next((fields[5] for fields in _passwd(passwd) if fields[0] == user), None)


def _user_of(passwd: str, uid: int | None) -> str | None:
    return next((fields[0] for fields in _passwd(passwd) if uid is not None and fields[2] == str(uid)), None)


def _ini_section(text: str, section: str) -> dict[str, str]:
    values: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
