"""Windows: CIM classes, BitLocker, firewall profiles, Defender and Security Center, the screen-saver
lock policy, the Windows Update agent, the Uninstall registry keys, TCP listeners, adapters.

Every query is one PowerShell pipeline ending in ConvertTo-Json, so its answer is JSON whatever
the display language. PowerShell prints one object for one result and an array for several.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ronda.agent.collectors.base import Check, Collector, Hardware, OsInfo
from ronda.agent.collectors.parsing import (
    as_int,
    as_list,
    clean_serial,
    clean_text,
    load_json,
    normalize_mac,
)

POWERSHELL = ("powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command")
PRELUDE = "$ProgressPreference='SilentlyContinue'; [Console]::OutputEncoding=[System.Text.Encoding]::UTF8; "

_SCREEN_LOCK = r"""
$names = 'ScreenSaveActive','ScreenSaverIsSecure','ScreenSaveTimeOut','SCRNSAVE.EXE'
function Read-Desktop($path) {
  $p = Get-ItemProperty -Path $path -ErrorAction SilentlyContinue
  if (-not $p) { return $null }
  $o = [ordered]@{}; foreach ($n in $names) { $o[$n] = $p.$n }; $o
}
$r = [ordered]@{}
$m = Get-ItemProperty -ErrorAction SilentlyContinue `
  -Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System'
$r.InactivityTimeoutSecs = $m.InactivityTimeoutSecs
$r.ConsoleUser = (Get-CimInstance Win32_ComputerSystem).UserName
$sid = $null
if ($r.ConsoleUser) {
  try { $sid = (New-Object System.Security.Principal.NTAccount($r.ConsoleUser)).Translate(
    [System.Security.Principal.SecurityIdentifier]).Value } catch {}
}
$r.Policy = $null; $r.User = $null
if ($sid) {
  $r.Policy = Read-Desktop "Registry::HKEY_USERS\$sid\Software\Policies\Microsoft\Windows\Control Panel\Desktop"
  $r.User = Read-Desktop "Registry::HKEY_USERS\$sid\Control Panel\Desktop"
}
$r | ConvertTo-Json -Depth 3
"""

_UPDATES = r"""
try {
  $searcher = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher()
  $result = $searcher.Search("IsInstalled=0 and IsHidden=0 and Type='Software'")
  $items = @($result.Updates | ForEach-Object {
    [ordered]@{ Title = $_.Title; MsrcSeverity = $_.MsrcSeverity;
                Categories = @($_.Categories | ForEach-Object { $_.Name }) }
  })
  [ordered]@{ ResultCode = [int]$result.ResultCode; Count = $result.Updates.Count; Updates = $items } |
    ConvertTo-Json -Depth 4
} catch { [Console]::Error.WriteLine($_.Exception.Message); exit 1 }
"""

_SOFTWARE = r"""
$paths = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
  'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*',
  'HKCU:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*'
Get-ItemProperty -Path $paths -ErrorAction SilentlyContinue |
  Where-Object { $_.DisplayName -and -not $_.SystemComponent } |
  Select-Object DisplayName,DisplayVersion,Publisher | ConvertTo-Json
"""

QUERIES: dict[str, str] = {
    "os": "Get-CimInstance Win32_OperatingSystem | Select-Object Caption,Version,BuildNumber,OSArchitecture,"
    "ProductType,SystemDrive,TotalVisibleMemorySize,CSName | ConvertTo-Json",
    "bios": "Get-CimInstance Win32_BIOS | Select-Object Manufacturer,SerialNumber,SMBIOSBIOSVersion | ConvertTo-Json",
    "computer": "Get-CimInstance Win32_ComputerSystem | Select-Object Name,Domain,Manufacturer,Model,PCSystemType,"
    "TotalPhysicalMemory,NumberOfLogicalProcessors,HypervisorPresent,UserName | ConvertTo-Json",
    "processor": "Get-CimInstance Win32_Processor | Select-Object Name,NumberOfCores,NumberOfLogicalProcessors "
    "| ConvertTo-Json",
    "volumes": "Get-CimInstance Win32_LogicalDisk -Filter 'DriveType=3' | Select-Object DeviceID,Size,FileSystem,"
    "VolumeName | ConvertTo-Json",
    "bitlocker": "Get-BitLockerVolume | Select-Object MountPoint,VolumeType,VolumeStatus,ProtectionStatus,"
    "EncryptionPercentage,EncryptionMethod | ConvertTo-Json",
    "bitlocker_shell": "(New-Object -ComObject Shell.Application).NameSpace($env:SystemDrive).Self.ExtendedProperty("
    "'System.Volume.BitLockerProtection')",
    "firewall": "Get-NetFirewallProfile -PolicyStore ActiveStore | Select-Object Name,Enabled,DefaultInboundAction "
    "| ConvertTo-Json",
    "defender": "Get-MpComputerStatus | Select-Object AMServiceEnabled,AntivirusEnabled,RealTimeProtectionEnabled,"
    "AMRunningMode,AntivirusSignatureVersion,AntivirusSignatureAge,AntivirusSignatureLastUpdated | ConvertTo-Json",
    "av_products": "Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct | Select-Object "
    "displayName,productState | ConvertTo-Json",
    "screen_lock": _SCREEN_LOCK.strip(),
    "updates": _UPDATES.strip(),
    "software": _SOFTWARE.strip(),
    "tcp_listen": "Get-NetTCPConnection -State Listen | Select-Object LocalAddress,LocalPort,OwningProcess,"
    "@{Name='ProcessName';Expression={(Get-Process -Id $_.OwningProcess -ErrorAction SilentlyContinue).ProcessName}}"
    " | ConvertTo-Json",
    "adapters": "Get-NetAdapter | Select-Object Name,InterfaceDescription,ifIndex,MacAddress,Status | ConvertTo-Json",
    "addresses": "Get-NetIPAddress | Select-Object InterfaceAlias,InterfaceIndex,IPAddress,AddressFamily,PrefixLength"
    " | ConvertTo-Json",
    "default_route": "Get-NetRoute -DestinationPrefix '0.0.0.0/0' | Sort-Object RouteMetric | Select-Object -First 1 "
    "InterfaceIndex,InterfaceAlias,NextHop | ConvertTo-Json",
}

# Win32_ComputerSystem.PCSystemType
PC_LAPTOP = {2}
PC_DESKTOP = {1, 3}
PC_SERVER = {4, 5, 7}
VM_MODELS = ("virtual machine", "vmware", "virtualbox", "kvm", "qemu", "hvm domu", "google compute engine",
             "amazon ec2", "parallels", "bochs")
# BitLockerVolume enums (Microsoft.BitLocker.Structures)
VOLUME_STATUS = {0: "FullyDecrypted", 1: "FullyEncrypted", 2: "EncryptionInProgress", 3: "DecryptionInProgress",
                 4: "EncryptionPaused", 5: "DecryptionPaused"}
PROTECTION_STATUS = {0: "Off", 1: "On", 2: "Unknown"}
# System.Volume.BitLockerProtection (Shell property, readable without administrator rights)
SHELL_PROTECTION = {1: "on", 2: "off", 3: "encrypting", 4: "decrypting", 5: "suspended", 6: "on (locked)",
                    8: "waiting for activation"}
SECURITY_CATEGORIES = {"Security Updates", "Critical Updates"}


def powershell_argv(name: str) -> tuple[str, ...]:
    return (*POWERSHELL, PRELUDE + QUERIES[name])


class WindowsCollector(Collector):
    os_type = "windows"

    def ps(self, name: str, timeout: float = 60) -> tuple[Any, str | None]:
        """(parsed JSON, None) or (None, why it failed)."""
        result = self.run(*powershell_argv(name), timeout=timeout)
        if result is None:
            return None, "PowerShell is not available"
        if result.timed_out:
            return None, f"PowerShell query '{name}' timed out"
        if not result.ok:
            return None, " ".join(result.stderr.split())[:300] or f"PowerShell query '{name}' failed"
        if not result.stdout.strip():
            return [], None
        data = load_json(result.stdout)
        if data is None and result.stdout.strip():
            return result.stdout.strip(), None
        return data, None

    def _one(self, name: str) -> dict[str, Any]:
        data, _ = self.ps(name)
        first = next(iter(as_list(data)), None)
        return first if isinstance(first, dict) else {}

    def _many(self, name: str, timeout: float = 60) -> list[dict[str, Any]]:
        data, _ = self.ps(name, timeout)
        return [item for item in as_list(data) if isinstance(item, dict)]

    # --- identity and hardware ---------------------------------------------------------------

    def os_info(self) -> OsInfo:
        os_ = self._one("os")
        return OsInfo(
            name=clean_text(os_.get("Caption")),
            version=clean_text(os_.get("Version")),
            build=clean_text(os_.get("BuildNumber")),
            kernel=None,
        )

    def device_name(self) -> str:
        return clean_text(self._one("computer").get("Name")) or self.host.hostname

    def hardware(self) -> Hardware:
        computer = self._one("computer")
        bios = self._one("bios")
        os_ = self._one("os")
        processors = self._many("processor")
        hardware = Hardware(
            manufacturer=clean_text(computer.get("Manufacturer")),
            model=clean_text(computer.get("Model")),
            serial_number=clean_serial(bios.get("SerialNumber")),
            cpu_model=clean_text(processors[0].get("Name")) if processors else None,
            cpu_cores=sum(as_int(p.get("NumberOfCores")) or 0 for p in processors) or None,
            cpu_threads=sum(as_int(p.get("NumberOfLogicalProcessors")) or 0 for p in processors)
            or as_int(computer.get("NumberOfLogicalProcessors")),
            memory_bytes=as_int(computer.get("TotalPhysicalMemory")),
        )
        if hardware.memory_bytes is None and as_int(os_.get("TotalVisibleMemorySize")):
            hardware.memory_bytes = (as_int(os_.get("TotalVisibleMemorySize")) or 0) * 1024
        hardware.disks = self._disks()
        identity = f"{hardware.manufacturer or ''} {hardware.model or ''}".lower()
        pc_type = as_int(computer.get("PCSystemType"))
        product_type = as_int(os_.get("ProductType"))
        if any(model in identity for model in VM_MODELS):
            hardware.device_type, hardware.virtualization = "virtual_machine", hardware.model
            hardware.device_type_source = "model"
        elif pc_type in PC_LAPTOP:
            hardware.device_type, hardware.device_type_source = "laptop", "PCSystemType 2 (mobile)"
        elif product_type in (2, 3) or pc_type in PC_SERVER:
            hardware.device_type, hardware.device_type_source = "server", f"ProductType {product_type}"
        elif pc_type in PC_DESKTOP:
            hardware.device_type, hardware.device_type_source = "desktop", f"PCSystemType {pc_type}"
        return hardware

    def _bitlocker(self) -> dict[str, dict[str, Any]]:
        volumes = {}
        for volume in self._many("bitlocker"):
            mount = clean_text(volume.get("MountPoint"))
            if mount:
                volumes[mount.rstrip("\\").upper()] = volume
        return volumes

    def _disks(self) -> list[dict[str, Any]]:
        bitlocker = self._bitlocker()
        disks = []
        for volume in self._many("volumes"):
            name = clean_text(volume.get("DeviceID")) or ""
            status = bitlocker.get(name.upper())
            encrypted = None
            if status is not None:
                encrypted = _enum(status.get("ProtectionStatus"), PROTECTION_STATUS) == "On"
            disks.append({"name": name, "size_bytes": as_int(volume.get("Size")),
                          "file_system": volume.get("FileSystem"), "encrypted": encrypted})
        return disks

    # --- software and network ----------------------------------------------------------------

    def packages(self) -> list[dict[str, Any]]:
        seen: set[tuple[str, str | None]] = set()
        packages = []
        for item in self._many("software", timeout=120):
            name = clean_text(item.get("DisplayName"))
            version = clean_text(item.get("DisplayVersion"))
            if not name or (name, version) in seen:
                continue
            seen.add((name, version))
            packages.append({"name": name, "version": version, "source": "registry",
                             "publisher": clean_text(item.get("Publisher"))})
        return packages

    def interfaces(self) -> list[dict[str, Any]]:
        by_index: dict[int, dict[str, Any]] = {}
        for adapter in self._many("adapters"):
            index = as_int(adapter.get("ifIndex"))
            if index is None:
                continue
            by_index[index] = {"name": adapter.get("Name"), "mac": normalize_mac(adapter.get("MacAddress")),
                               "ips": [], "state": str(adapter.get("Status") or "").lower() or None,
                               "description": adapter.get("InterfaceDescription")}
        for address in self._many("addresses"):
            index = as_int(address.get("InterfaceIndex"))
            ip = clean_text(address.get("IPAddress"))
            if index is None or not ip:
                continue
            entry = by_index.setdefault(index, {"name": address.get("InterfaceAlias"), "mac": None, "ips": [],
                                                "state": None})
            entry["ips"].append(ip.split("%", 1)[0])
        return [by_index[i] for i in sorted(by_index)]

    def primary_interface(self) -> str | None:
        route = self._one("default_route")
        return clean_text(route.get("InterfaceAlias"))

    def listening_ports(self) -> list[dict[str, Any]]:
        ports = []
        seen: set[tuple[int, str]] = set()
        for row in self._many("tcp_listen"):
            port = as_int(row.get("LocalPort"))
            address = clean_text(row.get("LocalAddress")) or "0.0.0.0"  # noqa: S104 - read, not bound
            if port is None or (port, address) in seen:
                continue
            seen.add((port, address))
            ports.append({"port": port, "protocol": "tcp", "address": address,
                          "process": clean_text(row.get("ProcessName"))})
        return ports

    # --- posture checks ------------------------------------------------------------------------

    def check_disk_encryption(self) -> Check:
        system_drive = (clean_text(self._one("os").get("SystemDrive")) or "C:").upper()
        data, why = self.ps("bitlocker")
        volumes = {}
        for volume in as_list(data):
            if isinstance(volume, dict) and clean_text(volume.get("MountPoint")):
                volumes[str(volume["MountPoint"]).rstrip("\\").upper()] = volume
        volume = volumes.get(system_drive)
        if volume is not None:
            status = _enum(volume.get("VolumeStatus"), VOLUME_STATUS)
            protection = _enum(volume.get("ProtectionStatus"), PROTECTION_STATUS)
            details = {"volume": system_drive, "volume_status": status, "protection_status": protection,
                       "encryption_percentage": volume.get("EncryptionPercentage")}
            if protection == "On":
                return Check.passed(f"BitLocker protects {system_drive}", "Get-BitLockerVolume", **details)
            if status == "FullyEncrypted":
                return Check.failed(f"BitLocker protection of {system_drive} is suspended", "Get-BitLockerVolume",
                                    **details)
            if protection == "Off" and status:
                return Check.failed(f"BitLocker does not protect {system_drive} ({status})", "Get-BitLockerVolume",
                                    **details)
        shell, shell_why = self.ps("bitlocker_shell")
        value = as_int(shell if not isinstance(shell, list) else None)
        if value is not None and value != 0:
            state = SHELL_PROTECTION.get(value, str(value))
            details = {"volume": system_drive, "shell_protection": value}
            if value in (1, 6):
                return Check.passed(f"BitLocker is {state} on {system_drive}", "Shell BitLockerProtection", **details)
            return Check.failed(f"BitLocker is {state} on {system_drive}", "Shell BitLockerProtection", **details)
        if value == 0:  # the volume cannot hold BitLocker (e.g. Home editions without device encryption)
            return Check.failed(f"{system_drive} is not encrypted (BitLocker not available on this volume)",
                                "Shell BitLockerProtection", volume=system_drive, shell_protection=0)
        return Check.unknown(f"BitLocker state unreadable: {why or 'no volume'}; {shell_why or 'no shell answer'}")

    def check_firewall_enabled(self) -> Check:
        data, why = self.ps("firewall")
        profiles = [p for p in as_list(data) if isinstance(p, dict)]
        if not profiles:
            return Check.unknown(f"firewall profiles unreadable: {why or 'no profiles'}", "Get-NetFirewallProfile")
        states = {}
        for profile in profiles:
            enabled = _gpo_boolean(profile.get("Enabled"))
            inbound = _action(profile.get("DefaultInboundAction"))
            states[str(profile.get("Name"))] = {"enabled": enabled, "default_inbound": inbound}
        off = [name for name, state in states.items() if state["enabled"] is False]
        allow = [name for name, state in states.items() if state["enabled"] and state["default_inbound"] == "Allow"]
        undetermined = [name for name, state in states.items() if state["enabled"] is None]
        if off:
            return Check.failed(f"the firewall is off for the {', '.join(off)} profile(s)", "Get-NetFirewallProfile",
                                profiles=states)
        if allow:
            return Check.failed(f"the {', '.join(allow)} profile(s) allow all inbound connections",
                                "Get-NetFirewallProfile", profiles=states)
        if undetermined:
            return Check.unknown(f"the state of the {', '.join(undetermined)} profile(s) is not readable",
                                 "Get-NetFirewallProfile", profiles=states)
        return Check.passed("the firewall is on for every profile", "Get-NetFirewallProfile", profiles=states)

    def check_screen_lock_enabled(self) -> Check:
        data, why = self.ps("screen_lock")
        if not isinstance(data, dict):
            return Check.unknown(f"the screen lock settings are unreadable: {why or 'no answer'}")
        timeout = as_int(data.get("InactivityTimeoutSecs"))
        details: dict[str, Any] = {"inactivity_timeout_seconds": timeout, "user": data.get("ConsoleUser")}
        if timeout:
            return Check.passed(f"the machine locks after {timeout} seconds of inactivity (policy)", "registry",
                                **details)
        for scope in ("Policy", "User"):
            values = data.get(scope)
            if not isinstance(values, dict):
                continue
            active = _reg_flag(values.get("ScreenSaveActive"))
            secure = _reg_flag(values.get("ScreenSaverIsSecure"))
            saver = clean_text(values.get("SCRNSAVE.EXE"))
            wait = as_int(values.get("ScreenSaveTimeOut"))
            details[scope.lower()] = {"screen_saver_active": active, "password_protected": secure,
                                      "screen_saver": saver, "timeout_seconds": wait}
            if scope == "Policy":
                if active is False:
                    return Check.failed("group policy turns the screen saver off", "registry", **details)
                if secure is False:
                    return Check.failed("group policy turns the screen saver password off", "registry", **details)
                if active and secure:
                    return Check.passed("group policy enforces a password-protected screen saver", "registry",
                                        **details)
                continue
            if active is False:
                return Check.failed("the screen saver is turned off", "registry", **details)
            if not saver:
                return Check.failed("no screen saver is chosen and no inactivity limit is set, so the screen "
                                    "never locks by itself", "registry", **details)
            if not secure:
                return Check.failed("the screen saver does not ask for a password", "registry", **details)
            if wait == 0:
                return Check.failed("the screen saver timeout is zero", "registry", **details)
            return Check.passed("a password-protected screen saver is set", "registry", **details)
        if not data.get("ConsoleUser"):
            return Check.unknown("no user is signed in at the console", "registry", **details)
        return Check.unknown("the signed-in user's desktop settings are not readable", "registry", **details)

    def check_os_up_to_date(self) -> Check:
        data, why = self.ps("updates", timeout=600)
        if not isinstance(data, dict) or as_int(data.get("ResultCode")) not in (2, 3):
            code = as_int(data.get("ResultCode")) if isinstance(data, dict) else None
            return Check.unknown(f"the Windows Update search failed: {why or f'result code {code}'}",
                                 "Windows Update Agent")
        updates = [u for u in as_list(data.get("Updates")) if isinstance(u, dict)]
        security = [
            u for u in updates
            if clean_text(u.get("MsrcSeverity")) or SECURITY_CATEGORIES & set(as_list(u.get("Categories")))
        ]
        details = {
            "pending_updates": as_int(data.get("Count")) or len(updates),
            "pending_security_updates": len(security),
            "security_updates": [u.get("Title") for u in security][:50],
        }
        if security:
            return Check.failed(f"{len(security)} security or critical updates are pending", "Windows Update Agent",
                                **details)
        return Check.passed("no security or critical updates are pending", "Windows Update Agent", **details)

    def check_antivirus_enabled(self) -> Check:
        defender, why = self.ps("defender")
        status = next(iter(as_list(defender)), None)
        details: dict[str, Any] = {}
        if isinstance(status, dict):
            mode = clean_text(status.get("AMRunningMode"))
            realtime = status.get("RealTimeProtectionEnabled") is True
            details["defender"] = {
                "running_mode": mode,
                "antivirus_enabled": status.get("AntivirusEnabled"),
                "real_time_protection": status.get("RealTimeProtectionEnabled"),
                "signature_version": status.get("AntivirusSignatureVersion"),
                "signature_age_days": as_int(status.get("AntivirusSignatureAge")),
                "signature_updated": _ps_date(status.get("AntivirusSignatureLastUpdated")),
            }
            if status.get("AntivirusEnabled") is True and realtime and mode in (None, "Normal"):
                return Check.passed("Microsoft Defender real-time protection is on", "Get-MpComputerStatus",
                                    **details)
        products_data, products_why = self.ps("av_products")
        products = [p for p in as_list(products_data) if isinstance(p, dict)]
        decoded = []
        for product in products:
            state = as_int(product.get("productState"))
            decoded.append({"name": product.get("displayName"), "product_state": state,
                            "enabled": state is not None and (state >> 12) & 0xF in (1, 3),
                            "up_to_date": state is not None and (state >> 4) & 0xF == 0})
        if decoded:
            details["security_center"] = decoded
            enabled = [p["name"] for p in decoded if p["enabled"]]
            if enabled:
                return Check.passed(f"{', '.join(map(str, enabled))} is on (Security Center)", "SecurityCenter2",
                                    **details)
            return Check.failed("Security Center reports no enabled antivirus", "SecurityCenter2", **details)
        if isinstance(status, dict):
            return Check.failed("Microsoft Defender real-time protection is off", "Get-MpComputerStatus", **details)
        return Check.unknown(f"no antivirus status is readable: {why or 'Defender unavailable'}; "
                             f"{products_why or 'no Security Center (server edition?)'}")


# --- value decoding ------------------------------------------------------------------------------


def _enum(value: Any, names: dict[int, str]) -> str | None:
    number = as_int(value)
    if number is not None:
        return names.get(number, str(number))
    return clean_text(value)


def _gpo_boolean(value: Any) -> bool | None:
    """GpoBoolean: False=0, True=1, NotConfigured=2 (ConvertTo-Json prints the number or a bool)."""
    if isinstance(value, bool):
        return value
    number = as_int(value)
    if number in (0, 1):
        return number == 1
    text = str(value).strip().lower()
    return {"true": True, "false": False}.get(text)


def _action(value: Any) -> str | None:
    """NetSecurity Action: NotConfigured=0, Allow=2, Block=4."""
    return _enum(value, {0: "NotConfigured", 2: "Allow", 4: "Block"})


def _reg_flag(value: Any) -> bool | None:
    number = as_int(value)
    return None if number is None else number != 0


def _ps_date(value: Any) -> str | None:
    """Windows PowerShell 5.1 prints DateTime as "/Date(ms)/"; PowerShell 7 prints ISO 8601."""
    if not isinstance(value, str):
        return None
    match = re.search(r"/Date\((-?\d+)", value)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value
