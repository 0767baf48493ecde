"""Device shapes shared by the inventory routes and the report/agent routes."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime

DataType = Literal["security", "hardware", "software", "network", "custom"]
DATA_TYPES: tuple[str, ...] = ("security", "hardware", "software", "network", "custom")
CheckResult = Literal["pass", "fail", "unknown"]
ComplianceStatus = Literal["compliant", "non_compliant", "needs_review", "unknown"]
POSTURE_CHECKS: tuple[str, ...] = (
    "disk_encryption", "firewall_enabled", "screen_lock_enabled", "os_up_to_date", "antivirus_enabled",
)


# Serial numbers that firmware fills in when the vendor did not: never an identity.
JUNK_SERIALS = frozenset(
    s.upper()
    for s in (
        "", "0", "none", "null", "n/a", "na", "unknown", "default string", "to be filled by o.e.m.",
        "system serial number", "not specified", "not applicable", "chassis serial number",
        "123456789", "0123456789", "xxxxxxxxxxxx", "serial number", "invalid", "oem",
    )
)
# MACs that are not one interface's identity: all zeros and broadcast.
JUNK_MACS = frozenset({"00:00:00:00:00:00", "FF:FF:FF:FF:FF:FF"})
_HEX = frozenset("0123456789ABCDEF")


def normalize_serial(value: str | None) -> str | None:
    """The stored, compared form of a serial number: trimmed, upper-case; None for junk.

    Serial numbers compare case-insensitively. Storing this canonical form keeps the
    (tenant_id, serial_number) index usable for the merge lookup.
    """
    if value is None:
        return None
    text = " ".join(value.split()).upper()
    if text in JUNK_SERIALS or not text.strip("0"):
        return None
    return text


def parse_mac(value: str) -> str | None:
    """AA:BB:CC:DD:EE:FF from the common spellings (colons, dashes, Cisco dots, bare hex); None if not a MAC."""
    digits = "".join(ch for ch in value.strip().upper() if ch not in ":-. ")
    if len(digits) != 12 or not set(digits) <= _HEX:
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def normalize_mac(value: str | None) -> str | None:
    """The stored, compared form of a MAC address; None for empty, malformed, all-zero or broadcast."""
    if not value:
        return None
    mac = parse_mac(value)
    return None if mac is None or mac in JUNK_MACS else mac


def normalize_hostname(value: str | None) -> str | None:
    """Trimmed hostname without a trailing dot; None when empty. Case is kept for display."""
    if value is None:
        return None
    text = value.strip().rstrip(".")
    return text or None


class Compliance(OutputModel):
    status: ComplianceStatus
    score: float | None = Field(description="Passed checks / evaluated checks, as a percentage")
    checks: dict[str, CheckResult]
    evaluated_at: UtcDatetime | None


class DeviceDataRead(OutputModel):
    id: str
    data_type: DataType
    data: dict[str, Any]
    collected_at: UtcDatetime = Field(description="When this content was first reported")
    last_seen_at: UtcDatetime = Field(description="When this content was last confirmed")


class DeviceRead(OutputModel):
    id: str
    tenant_id: str
    device_name: str | None
    hostname: str | None
    serial_number: str | None
    device_type: str
    os_type: str | None
    os_version: str | None
    os_guess: str | None
    ip: str | None
    mac: str | None
    vendor: str | None
    is_online: bool
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    site_id: str | None
    user_id: str | None
    tags: list[str]
    note: str | None
    open_ports: list[int]
    sources: list[str]
    managed: bool
    compliance: Compliance
    device_data: list[DeviceDataRead] | None = Field(
        None, description="Latest data per type, with include_data=true"
    )


# --- inventory inputs and outputs --------------------------------------------------------------

MAX_TAGS = 50
DEVICE_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_ .-]{0,39}$"
IDENTITY_FIELDS = ("device_name", "hostname", "serial_number", "ip", "mac")


def _clean_ip(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("is not an IP address") from None


def _clean_mac(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    mac = parse_mac(value)
    if mac is None:
        raise ValueError("is not a MAC address (use AA:BB:CC:DD:EE:FF)")
    if mac in JUNK_MACS:
        raise ValueError("is not a device's MAC address")
    return mac


def _clean_tags(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    seen: dict[str, None] = {}
    for tag in value:
        text = tag.strip()
        if not text:
            raise ValueError("tags cannot be empty")
        if len(text) > 50:
            raise ValueError("a tag is at most 50 characters")
        seen.setdefault(text, None)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return list(seen)


class DeviceFields(InputModel):
    """The fields a person may set on a device (manual create and full replace)."""

    device_name: str | None = Field(None, max_length=200)
    hostname: str | None = Field(None, max_length=255)
    serial_number: str | None = Field(None, max_length=100)
    device_type: str | None = Field(None, pattern=DEVICE_TYPE_PATTERN, description="laptop, server, printer, ...")
    os_type: str | None = Field(None, max_length=40, description="macos, windows, linux, ...")
    os_version: str | None = Field(None, max_length=100)
    ip: str | None = Field(None, max_length=45, description="IPv4 or IPv6 address")
    mac: str | None = Field(None, max_length=32, description="Stored as AA:BB:CC:DD:EE:FF")
    vendor: str | None = Field(None, max_length=200)
    site_id: str | None = Field(None, max_length=40)
    user_id: str | None = Field(None, max_length=40, description="Owner: a user of your tenant")
    tags: list[str] | None = Field(None, description=f"At most {MAX_TAGS} tags of up to 50 characters")
    note: str | None = Field(None, max_length=5000)

    _ip = field_validator("ip")(_clean_ip)
    _mac = field_validator("mac")(_clean_mac)
    _tags = field_validator("tags")(_clean_tags)

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        return normalize_hostname(value)

    @field_validator("device_type")
    @classmethod
    def _device_type(cls, value: str | None) -> str | None:
        return value.lower() if value else None

    @field_validator("device_name", "serial_number", "os_type", "os_version", "vendor", "site_id", "user_id", "note")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    def identifies(self) -> bool:
        return any(getattr(self, name) for name in IDENTITY_FIELDS)


class DeviceCreate(DeviceFields):
    """A device entered by hand; it needs at least a name, hostname, serial number, IP or MAC."""

    @model_validator(mode="after")
    def _identified(self) -> DeviceCreate:
        if not self.identifies():
            raise ValueError("give at least one of device_name, hostname, serial_number, ip or mac")
        return self


class DeviceReplace(DeviceFields):
    """PUT: every editable field; one left out is cleared (tags to [], device_type to unknown)."""


class DevicePatch(InputModel):
    """PATCH: only the fields sent change; user_id null removes the owner."""

    device_name: str | None = Field(None, max_length=200)
    device_type: str | None = Field(None, pattern=DEVICE_TYPE_PATTERN)
    site_id: str | None = Field(None, max_length=40)
    user_id: str | None = Field(None, max_length=40)
    tags: list[str] | None = None
    note: str | None = Field(None, max_length=5000)

    _tags = field_validator("tags")(_clean_tags)

    @field_validator("device_type")
    @classmethod
    def _device_type(cls, value: str | None) -> str | None:
        return value.lower() if value else None

    @field_validator("device_name", "site_id", "user_id", "note")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


class DevicePortRead(OutputModel):
    id: str
    port: int
    protocol: str
    state: str
    service: str | None
    version: str | None
    banner: str | None
    cpe: str | None
    process: str | None
    source: str
    first_seen: UtcDatetime
    last_seen: UtcDatetime


class DevicePortList(OutputModel):
    data: list[DevicePortRead]
