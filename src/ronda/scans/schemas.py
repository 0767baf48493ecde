"""Request and response models of the scans API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime

ScanStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
ProfileName = Literal["quick", "normal", "deep", "stealth", "custom"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
ACTIVE: frozenset[str] = frozenset({"queued", "running"})

TargetWord = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
PortWord = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ScanStart(InputModel):
    """POST /scans/start. The knobs apply to any profile, overriding its defaults."""

    target: TargetWord | Annotated[list[TargetWord], Field(min_length=1, max_length=1024)] = Field(
        description="An IP, CIDR, range (10.0.0.1-50), hostname, or a list of these"
    )
    profile: ProfileName = Field("normal", description="quick, normal, deep, stealth or custom")
    site_id: str | None = Field(None, max_length=40, description="The site whose inventory the results merge into")
    ports: PortWord | Annotated[list[int | PortWord], Field(min_length=1, max_length=65535)] | None = Field(
        None, description='Ports as a list ([22, 80, "8000-8100"]) or a spec ("22,80,8000-8100", "top 100", "all")'
    )
    exclude: list[TargetWord] | None = Field(None, max_length=1024, description="Addresses or networks to skip")
    timeout_ms: int | None = Field(None, ge=10, le=60_000, description="Connect timeout ceiling per probe, ms")
    max_concurrent: int | None = Field(None, ge=1, le=20_000, description="Probes in flight at once")
    max_rate: float | None = Field(None, ge=0.1, le=1_000_000, description="Probes per second at most")
    enable_profiling: bool | None = Field(None, description="Reverse DNS, MAC vendor, OS and device-type guesses")
    enable_cve_match: bool | None = Field(None, description="Match found services against known CVEs")
    engine: Literal["builtin", "nmap"] = Field("builtin", description="nmap (when installed) or the built-in engine")

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                if isinstance(item, int) and not 1 <= item <= 65535:
                    raise ValueError(f"port {item} is outside 1-65535")
        return value

    def ports_spec(self) -> str | None:
        if self.ports is None:
            return None
        if isinstance(self.ports, str):
            return self.ports
        return ",".join(str(item) for item in self.ports)


class ScanOptionsRead(OutputModel):
    ports: str | None = None
    exclude: list[str] = Field(default_factory=list)
    timeout_ms: int | None = None
    max_concurrent: int | None = None
    max_rate: float | None = None
    enable_profiling: bool | None = None
    enable_cve_match: bool | None = None
    engine: str = "builtin"


class ScanRead(OutputModel):
    id: str
    tenant_id: str
    site_id: str | None
    target: str | list[str]
    profile: str
    status: ScanStatus
    progress_percent: float
    hosts_total: int
    hosts_found: int
    ports_found: int
    estimated_completion: UtcDatetime | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    completed_at: UtcDatetime | None
    duration_seconds: float | None
    error: str | None
    requested_by: str | None
    options: ScanOptionsRead


class PortRead(OutputModel):
    port: int
    protocol: str
    state: str
    service: str | None = None
    product: str | None = None
    version: str | None = None
    banner: str | None = None
    cpe: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class HostRead(OutputModel):
    ip: str
    mac: str | None
    hostname: str | None
    vendor: str | None
    os_guess: str | None
    os_confidence: int
    device_type: str | None
    device_type_confidence: int
    device_id: str | None
    ttl: int | None = None
    rtt_ms: float | None = None
    ports: list[PortRead]


class PortRef(OutputModel):
    ip: str
    port: int
    protocol: str
    service: str | None = None


class ScanDiff(OutputModel):
    """Against the previous completed scan of the same target (same tenant), if any."""

    previous_scan_id: str | None
    new_hosts: list[str]
    missing_hosts: list[str]
    new_ports: list[PortRef]
    closed_ports: list[PortRef]


class ScanResultRead(OutputModel):
    id: str
    status: ScanStatus
    target: str | list[str]
    profile: str
    site_id: str | None
    started_at: UtcDatetime | None
    completed_at: UtcDatetime | None
    duration_seconds: float | None
    devices_found: int
    open_ports_total: int
    devices: list[HostRead]
    diff: ScanDiff | None
    error: str | None


class ResultPort(InputModel):
    """A port as the scanner's PortResult.to_dict() writes it (a probe's posted result)."""

    port: int = Field(ge=1, le=65535)
    protocol: str = Field("tcp", max_length=8)
    state: str = Field("open", max_length=20)
    service: str | None = Field(None, max_length=100)
    product: str | None = Field(None, max_length=200)
    version: str | None = Field(None, max_length=100)
    banner: str | None = Field(None, max_length=4096)
    cpe: list[str] = Field(default_factory=list, max_length=50)
    extra: dict[str, Any] = Field(default_factory=dict)


class ResultHost(InputModel):
    ip: str = Field(max_length=45)
    hostname: str | None = Field(None, max_length=255)
    mac: str | None = Field(None, max_length=40)
    vendor: str | None = Field(None, max_length=200)
    os_guess: str | None = Field(None, max_length=200)
    os_confidence: int = Field(0, ge=0, le=100)
    device_type: str | None = Field(None, max_length=40)
    device_type_confidence: int = Field(0, ge=0, le=100)
    ttl: int | None = Field(None, ge=0, le=255)
    rtt_ms: float | None = Field(None, ge=0)
    ports: list[ResultPort] = Field(default_factory=list, max_length=65535)


class ScanResultBody(InputModel):
    """The scanner's ScanResult.to_dict(): what a remote probe posts when its scan is done."""

    hosts: list[ResultHost] = Field(default_factory=list, max_length=65536)
    started_at: UtcDatetime
    finished_at: UtcDatetime
    hosts_total: int = Field(0, ge=0)
    ports_per_host: int = Field(0, ge=0)
    probes_sent: int = Field(0, ge=0)
    engine: str = Field("builtin", max_length=20)
