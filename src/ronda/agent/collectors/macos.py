"""macOS: sw_vers, system_profiler, fdesetup, the application firewall, the screen-lock setting,
softwareupdate, XProtect, lsof, ifconfig."""

from __future__ import annotations

import plistlib
import re
from typing import Any

from ronda.agent.collectors.base import Check, Collector, Hardware, OsInfo
from ronda.agent.collectors.parsing import (
    as_int,
    clean_serial,
    clean_text,
    load_json,
    normalize_mac,
    parse_colon_pairs,
    parse_size,
    split_host_port,
)

SW_VERS = ("sw_vers",)
UNAME = ("uname", "-r")
COMPUTER_NAME = ("scutil", "--get", "ComputerName")
HARDWARE = ("system_profiler", "SPHardwareDataType", "-json")
STORAGE = ("system_profiler", "SPStorageDataType", "-json")
APPLICATIONS = ("system_profiler", "SPApplicationsDataType", "-json")
FDESETUP = ("fdesetup", "status")
SOCKETFILTERFW = ("/usr/libexec/ApplicationFirewall/socketfilterfw", "--getglobalstate")
CONSOLE_USER = ("stat", "-f", "%Su %u", "/dev/console")
SCREEN_LOCK = ("sysadminctl", "-screenLock", "status")
ASK_FOR_PASSWORD = ("defaults", "read", "com.apple.screensaver", "askForPassword")
SOFTWAREUPDATE = ("softwareupdate", "-l")
LSOF = ("lsof", "-iTCP", "-sTCP:LISTEN", "-nP")
IFCONFIG = ("ifconfig",)
ROUTE = ("route", "-n", "get", "default")

XPROTECT_PLISTS = (
    "/Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Info.plist",
    "/private/var/protected/xprotect/XProtect.bundle/Contents/Info.plist",
    "/System/Library/CoreServices/XProtect.bundle/Contents/Info.plist",
)
SOFTWARE_UPDATE_PREFS = "/Library/Preferences/com.apple.SoftwareUpdate.plist"
MANAGED_PREFS = "/Library/Managed Preferences"
NO_SESSION_USERS = {"root", "_mbsetupuser", "loginwindow", ""}


class MacCollector(Collector):
    os_type = "macos"

    def _json(self, argv: tuple[str, ...], key: str, timeout: float = 60) -> list[dict[str, Any]]:
        result = self.run(*argv, timeout=timeout)
        data = load_json(result.stdout) if result is not None and result.ok else None
        items = data.get(key) if isinstance(data, dict) else None
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    def _plist(self, path: str) -> dict[str, Any] | None:
        data = self.host.files.read_bytes(path)
        if data is None:
            return None
        try:
            value = plistlib.loads(data)
        except (plistlib.InvalidFileException, ValueError, OverflowError):
            return None
        return value if isinstance(value, dict) else None

    # --- identity and hardware ---------------------------------------------------------------

    def os_info(self) -> OsInfo:
        result = self.run(*SW_VERS)
        values = parse_colon_pairs(result.stdout) if result is not None and result.ok else {}
        kernel = self.run(*UNAME)
        return OsInfo(
            name=values.get("ProductName"),
            version=values.get("ProductVersion"),
            build=values.get("BuildVersion"),
            kernel=clean_text(kernel.stdout) if kernel is not None and kernel.ok else None,
        )

    def device_name(self) -> str:
        result = self.run(*COMPUTER_NAME)
        name = clean_text(result.stdout) if result is not None and result.ok else None
        return name or self.host.hostname

    def hardware(self) -> Hardware:
        overview = next(iter(self._json(HARDWARE, "SPHardwareDataType")), {})
        name = clean_text(overview.get("machine_name"))
        identifier = clean_text(overview.get("machine_model"))
        hardware = Hardware(
            manufacturer="Apple Inc." if overview else None,
            model=f"{name} ({identifier})" if name and identifier else name or identifier,
            serial_number=clean_serial(overview.get("serial_number")),
            cpu_model=clean_text(overview.get("chip_type")) or _intel_cpu(overview),
            memory_bytes=parse_size(overview.get("physical_memory")),
        )
        processors = overview.get("number_processors")
        if isinstance(processors, str):  # Apple silicon: "proc 10:8:2" (total:performance:efficiency)
            match = re.search(r"(\d+)", processors)
            hardware.cpu_cores = int(match.group(1)) if match else None
        else:
            hardware.cpu_cores = as_int(processors)
        hardware.disks = self._disks()
        text = f"{name or ''} {identifier or ''}".lower()
        if identifier and identifier.startswith(("VirtualMac", "VMware", "Parallels")):
            hardware.device_type, hardware.virtualization = "virtual_machine", identifier
        elif "macbook" in text:
            hardware.device_type = "laptop"
        elif any(kind in text for kind in ("imac", "mac mini", "mac pro", "mac studio", "macmini", "macpro")):
            hardware.device_type = "desktop"
        elif "xserve" in text:
            hardware.device_type = "server"
        if hardware.device_type != "unknown":
            hardware.device_type_source = f"model {identifier or name}"
        return hardware

    def _disks(self) -> list[dict[str, Any]]:
        filevault = self._filevault_on()
        disks = []
        for volume in self._json(STORAGE, "SPStorageDataType"):
            mount = volume.get("mount_point")
            drive = volume.get("physical_drive") if isinstance(volume.get("physical_drive"), dict) else {}
            boot = mount in ("/", "/System/Volumes/Data")
            disks.append(
                {
                    "name": volume.get("_name") or volume.get("bsd_name"),
                    "device": volume.get("bsd_name"),
                    "mount_point": mount,
                    "size_bytes": as_int(volume.get("size_in_bytes")),
                    "file_system": volume.get("file_system"),
                    "physical_drive": (drive or {}).get("device_name"),
                    "encrypted": filevault if boot else None,
                }
            )
        return disks

    # --- software and network ----------------------------------------------------------------

    def packages(self) -> list[dict[str, Any]]:
        seen: set[tuple[str, str | None]] = set()
        packages = []
        for app in self._json(APPLICATIONS, "SPApplicationsDataType", timeout=300):
            name = clean_text(app.get("_name"))
            version = clean_text(app.get("version"))
            if not name or (name, version) in seen:
                continue
            seen.add((name, version))
            packages.append({"name": name, "version": version, "source": "applications",
                             "path": app.get("path"), "obtained_from": app.get("obtained_from")})
        return packages

    def interfaces(self) -> list[dict[str, Any]]:
        result = self.run(*IFCONFIG)
        if result is None or not result.ok:
            return []
        return parse_ifconfig(result.stdout)

    def primary_interface(self) -> str | None:
        result = self.run(*ROUTE)
        if result is None or not result.ok:
            return None
        return parse_colon_pairs(result.stdout).get("interface") or None

    def listening_ports(self) -> list[dict[str, Any]]:
        result = self.run(*LSOF)
        # lsof exits 1 when nothing matched; an empty listing is still an answer.
        if result is None or result.exit_code not in (0, 1):
            return []
        return parse_lsof_listen(result.stdout)

    # --- posture checks ------------------------------------------------------------------------

    def _filevault(self) -> tuple[bool | None, str]:
        result = self.run(*FDESETUP)
        if result is None:
            return None, "fdesetup is not available"
        text = result.stdout.strip()
        if not result.ok or not text:
            return None, " ".join(result.output.split())[:300] or "fdesetup status failed"
        progress = re.search(r"(Encryption|Decryption) in progress:.*?([\d.]+)", text)
        if progress:
            return False, f"FileVault {progress.group(1).lower()} in progress ({progress.group(2)}% done)"
        if text.startswith("FileVault is On"):
            return True, "FileVault is on"
        if text.startswith("FileVault is Off"):
            deferred = "will be enabled after the next restart" in text
            return False, "FileVault is off" + (" (enabled at the next restart)" if deferred else "")
        return None, f"unrecognised fdesetup output: {text[:200]}"

    def _filevault_on(self) -> bool | None:
        return self._filevault()[0]

    def check_disk_encryption(self) -> Check:
        state, why = self._filevault()
        if state is None:
            return Check.unknown(why, "fdesetup")
        return Check.passed(why, "fdesetup") if state else Check.failed(why, "fdesetup")

    def check_firewall_enabled(self) -> Check:
        result = self.run(*SOCKETFILTERFW)
        if result is None:
            return Check.unknown("socketfilterfw is not available")
        text = " ".join(result.stdout.split())
        match = re.search(r"State = (\d+)", text)
        state = int(match.group(1)) if match else None
        if state is None:
            if "enabled" in text.lower():
                state = 1
            elif "disabled" in text.lower():
                state = 0
        if state is None:
            return Check.unknown(f"unrecognised socketfilterfw output: {text[:200] or result.stderr[:200]}",
                                 "socketfilterfw")
        details = {"state": state, "block_all": state == 2}
        if state == 0:
            return Check.failed("the application firewall is off", "socketfilterfw", **details)
        return Check.passed("the application firewall is on", "socketfilterfw", **details)

    def _console_user(self) -> tuple[str, int | None] | None:
        result = self.run(*CONSOLE_USER)
        if result is None or not result.ok:
            return None
        parts = result.stdout.split()
        if not parts or parts[0] in NO_SESSION_USERS:
            return None
        return parts[0], as_int(parts[1]) if len(parts) > 1 else None

    def _as_user(self, user: str, uid: int | None, argv: tuple[str, ...]) -> Any:
        if uid is not None and uid == self.host.euid:
            return self.run(*argv)
        if not self.host.is_root or uid is None:
            return f"the console session belongs to {user}; reading its settings needs root or that user"
        return self.run("launchctl", "asuser", str(uid), "sudo", "-u", user, *argv)

    def check_screen_lock_enabled(self) -> Check:
        console = self._console_user()
        managed = self._managed_screensaver(console[0] if console else None)
        if managed is not None:
            return managed
        if console is None:
            return Check.unknown("no user is logged in at the console")
        user, uid = console
        details: dict[str, Any] = {"user": user}
        status = self._as_user(user, uid, SCREEN_LOCK)
        if isinstance(status, str):
            return Check.unknown(status, None, **details)
        if status is not None:
            text = status.output
            if re.search(r"screenLock is off", text):
                return Check.failed("the screen does not lock (sysadminctl: screenLock is off)", "sysadminctl",
                                    **details)
            delay = re.search(r"screenLock delay is (immediate|(\d+) seconds?)", text)
            if delay:
                details["delay_seconds"] = 0 if delay.group(1) == "immediate" else int(delay.group(2))
                return Check.passed(f"a password is required after sleep or the screen saver ({delay.group(1)})",
                                    "sysadminctl", **details)
            if re.search(r"screenLock is on", text):
                return Check.passed("a password is required after sleep or the screen saver", "sysadminctl",
                                    **details)
        ask = self._as_user(user, uid, ASK_FOR_PASSWORD)
        if not isinstance(ask, str) and ask is not None and ask.ok and ask.stdout.strip() in ("0", "1"):
            if ask.stdout.strip() == "1":
                return Check.passed("the screen saver asks for a password", "defaults", **details)
            return Check.failed("the screen saver does not ask for a password", "defaults", **details)
        return Check.unknown("neither sysadminctl nor the screensaver preferences answered", None, **details)

    def _managed_screensaver(self, user: str | None) -> Check | None:
        """A configuration profile (MDM) enforcing the screen saver password decides for everyone."""
        paths = [f"{MANAGED_PREFS}/com.apple.screensaver.plist"]
        if user:
            paths.insert(0, f"{MANAGED_PREFS}/{user}/com.apple.screensaver.plist")
        for path in paths:
            prefs = self._plist(path)
            if prefs is None or "askForPassword" not in prefs:
                continue
            details = {"profile": path, "ask_for_password_delay": prefs.get("askForPasswordDelay")}
            if prefs.get("askForPassword") in (True, 1):
                return Check.passed("a configuration profile requires the screen saver password",
                                    "configuration profile", **details)
            return Check.failed("a configuration profile turns the screen saver password off",
                                "configuration profile", **details)
        return None

    def check_os_up_to_date(self) -> Check:
        result = self.run(*SOFTWAREUPDATE, timeout=300)
        if result is None:
            return Check.unknown("softwareupdate is not available")
        text = result.output
        current = self.os_info().version
        updates = parse_softwareupdate(result.stdout)
        pending = [u for u in updates if not _is_major_upgrade(u, current)]
        details: dict[str, Any] = {
            "pending_updates": len(pending),
            "updates": [u["title"] or u["label"] for u in pending][:50],
            "major_upgrades_available": [u["title"] or u["label"] for u in updates if u not in pending],
            "restart_required": any(u.get("action") == "restart" for u in pending),
        }
        if pending:
            return Check.failed(f"{len(pending)} software updates are pending", "softwareupdate", **details)
        if "No new software available" in text:
            return Check.passed("no software updates are pending", "softwareupdate", **details)
        if updates:  # only major upgrades on offer: the current release is up to date
            return Check.passed("the installed release is up to date", "softwareupdate", **details)
        return Check.unknown(" ".join(text.split())[-300:] or "softwareupdate gave no answer", "softwareupdate")

    def check_antivirus_enabled(self) -> Check:
        versions = []
        for path in XPROTECT_PLISTS:
            info = self._plist(path)
            if info is not None:
                version = str(info.get("CFBundleShortVersionString") or info.get("CFBundleVersion") or "")
                if version:
                    versions.append((as_int(version) or 0, version, path))
        if not versions:
            return Check.unknown("the XProtect bundle was not found")
        _, version, path = max(versions)
        prefs = self._plist(SOFTWARE_UPDATE_PREFS) or {}
        auto = prefs.get("ConfigDataInstall")
        details = {"xprotect_version": version, "bundle": path,
                   "automatic_definition_updates": auto if isinstance(auto, bool) else None}
        if auto is False:
            return Check.failed("XProtect is present but its definitions do not update (ConfigDataInstall off)",
                                "xprotect", **details)
        return Check.passed(f"XProtect {version} is installed and updates automatically", "xprotect", **details)


# --- parsers -------------------------------------------------------------------------------------


def _intel_cpu(overview: dict[str, Any]) -> str | None:
    kind = clean_text(overview.get("cpu_type"))
    speed = clean_text(overview.get("current_processor_speed"))
    return f"{kind} @ {speed}" if kind and speed else kind


def parse_ifconfig(text: str) -> list[dict[str, Any]]:
    interfaces: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            name = line.split(":", 1)[0]
            current = {"name": name, "mac": None, "ips": [], "state": None}
            interfaces.append(current)
            continue
        if current is None:
            continue
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "ether":
            current["mac"] = normalize_mac(parts[1])
        elif len(parts) >= 2 and parts[0] in ("inet", "inet6"):
            current["ips"].append(parts[1].split("%", 1)[0])
        elif len(parts) >= 2 and parts[0] == "status:":
            current["state"] = parts[1]
    return interfaces


def parse_lsof_listen(text: str) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 9 or parts[0] == "COMMAND" or parts[-1] != "(LISTEN)":
            continue
        local = split_host_port(parts[-2])
        if local is None:
            continue
        address, port = local
        if parts[-2].startswith("*") and parts[4] == "IPv6":
            address = "::"
        if (port, address) in seen:
            continue
        seen.add((port, address))
        ports.append({"port": port, "protocol": "tcp", "address": address,
                      "process": parts[0].replace("\\x20", " ")})
    return ports


def parse_softwareupdate(text: str) -> list[dict[str, Any]]:
    updates: list[dict[str, Any]] = []
    for line in text.splitlines():
        label = re.match(r"^\s*\*\s+Label:\s*(.+?)\s*$", line)
        if label:
            updates.append({"label": label.group(1), "title": None, "version": None, "recommended": None,
                            "action": None})
            continue
        if updates and line.strip().startswith("Title:"):
            fields = {}
            for part in line.strip().split(", "):
                key, sep, value = part.partition(": ")
                if sep:
                    fields[key.strip()] = value.strip().rstrip(",")
            updates[-1].update(
                title=fields.get("Title"),
                version=fields.get("Version"),
                recommended=fields.get("Recommended") == "YES",
                action=fields.get("Action"),
            )
    return updates


def _is_major_upgrade(update: dict[str, Any], current: str | None) -> bool:
    """`macOS Sonoma 14.2` offered to a 13.x Mac is an upgrade, not a missing patch."""
    title, version = update.get("title") or "", update.get("version") or ""
    if not current or not title.startswith("macOS") or not version:
        return False
    return version.split(".")[0] != current.split(".")[0]
