"""The body of POST /devices/report: the 004 seed's fields, plus network, custom and identity hints.

The seed's example is accepted exactly as written: device facts at the top level and free-form
`security`, `hardware`, `software` sections. Known fields are type-checked (a wrong type is a 400
naming the field); everything else inside a section is kept as the agent sent it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.functional_validators import BeforeValidator

from ronda.core.schemas import InputModel
from ronda.devices.schemas import DEVICE_TYPE_PATTERN, parse_mac

MAX_INTERFACES = 512
MAX_PORTS = 10_000
MAX_IPS = 64
PROTOCOLS = {"tcp": "tcp", "tcp4": "tcp", "tcp6": "tcp", "udp": "udp", "udp4": "udp", "udp6": "udp", "sctp": "sctp"}
CHECK_HELP = 'true, false, "pass", "fail", "unknown" or null'


def _check_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("pass", "fail", "unknown"):
        return value.strip().lower()
    raise ValueError(f"must be {CHECK_HELP}")


CheckValue = Annotated[bool | str | None, BeforeValidator(_check_value)]


def _optional_ip(value: Any) -> str | None:
    """An address, with or without a prefix length ("10.0.0.5/24"); stored without it."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("must be an IP address")
    return _normal_ip(value)


@lru_cache(maxsize=8192)
def _normal_ip(value: str) -> str:
    # Cached: a device reports the same addresses at every check-in, and parsing one costs more than
    # the rest of its interface's validation. (A ValueError is not cached.)
    try:
        return str(ipaddress.ip_interface(value.strip()).ip)
    except ValueError:
        raise ValueError("is not an IP address") from None


class Section(BaseModel):
    """A report section: the known fields are checked, anything else is kept as sent."""

    model_config = ConfigDict(extra="allow")


class SecuritySection(Section):
    disk_encryption: CheckValue = None
    firewall_enabled: CheckValue = None
    screen_lock_enabled: CheckValue = None
    os_up_to_date: CheckValue = None
    antivirus_enabled: CheckValue = None


class HardwareSection(Section):
    manufacturer: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=200)
    serial_number: str | None = Field(None, max_length=100)


class Interface(Section):
    name: str | None = Field(None, max_length=100)
    ip: str | None = Field(None, max_length=64, description="Address, optionally with /prefix")
    ips: list[str] | None = Field(None, max_length=MAX_IPS)
    mac: str | None = Field(None, max_length=32)
    primary: bool | None = Field(None, description="The interface that names the device (ip/mac)")

    @field_validator("ip", mode="before")
    @classmethod
    def _ip(cls, value: Any) -> str | None:
        return _optional_ip(value)

    @field_validator("ips")
    @classmethod
    def _ips(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [ip for ip in (_optional_ip(item) for item in value) if ip]

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if not value:
            return None
        mac = parse_mac(value)
        if mac is None:
            raise ValueError("is not a MAC address")
        return mac

    def addresses(self) -> list[str]:
        out = [self.ip] if self.ip else []
        out.extend(ip for ip in self.ips or () if ip not in out)
        return out


class ListeningPort(Section):
    port: int = Field(..., ge=0, le=65535, description="0 (not bound to a port) is kept in the data only")
    protocol: str = Field("tcp", max_length=8, description="tcp or udp (tcp6/udp6 are folded in)")
    process: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=64, description="The local address it listens on")

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        folded = PROTOCOLS.get(value.strip().lower())
        if folded is None:
            raise ValueError("must be tcp, udp or sctp")
        return folded


class NetworkSection(Section):
    interfaces: list[Interface] = Field(default_factory=list, max_length=MAX_INTERFACES)
    listening_ports: list[ListeningPort] = Field(default_factory=list, max_length=MAX_PORTS)
    primary_interface: str | None = Field(None, max_length=100, description="Name of the default-route interface")
    primary_ip: str | None = Field(None, max_length=64)
    primary_mac: str | None = Field(None, max_length=32)

    @field_validator("primary_ip", mode="before")
    @classmethod
    def _primary_ip(cls, value: Any) -> str | None:
        return _optional_ip(value)

    @field_validator("primary_mac")
    @classmethod
    def _primary_mac(cls, value: str | None) -> str | None:
        return Interface._mac(value)


class ReportBody(InputModel):
    """What an agent (or a person, or a script) reports about one device."""

    device_name: str | None = Field(None, max_length=200)
    serial_number: str | None = Field(None, max_length=100)
    device_type: str | None = Field(None, pattern=DEVICE_TYPE_PATTERN, description="laptop, desktop, server, ...")
    os_type: str | None = Field(None, max_length=40, description="macos, windows, linux, ...")
    os_version: str | None = Field(None, max_length=100)
    hostname: str | None = Field(None, max_length=255)
    user_id: str | None = Field(None, max_length=40, description="Owner (admins only; a user owns what it reports)")
    site_id: str | None = Field(None, max_length=40)
    agent_version: str | None = Field(None, max_length=40)
    security: SecuritySection | None = Field(None, description=f"Posture checks, each {CHECK_HELP}")
    hardware: HardwareSection | None = None
    software: dict[str, Any] | list[Any] | None = Field(
        None, description="Installed software; a bare list is stored as {\"packages\": [...]}"
    )
    network: NetworkSection | None = Field(None, description="interfaces [{name, ip/ips, mac}] and listening_ports")
    custom: dict[str, Any] | None = Field(None, description="Anything else worth keeping")

    @field_validator("device_type", "os_type")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None
