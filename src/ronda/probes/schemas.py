"""Request and response models of probe registration (/sites/{id}/probes, /probes) and the probe API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ProbeCreate(InputModel):
    name: Name = Field("probe", description="What to call this sensor, e.g. 'berlin-office-pi'")


class ProbeRead(OutputModel):
    id: str
    tenant_id: str
    site_id: str
    name: str
    key_prefix: str
    created_by: str | None
    created_at: UtcDatetime
    last_contact_at: UtcDatetime | None = Field(description="When the probe last called the probe API")
    last_ip: str | None
    version: str | None
    active: bool = Field(description="Not revoked, and heard from in the last 90 seconds")
    revoked_at: UtcDatetime | None


class ProbeCreated(ProbeRead):
    key: str = Field(description="The probe's key, shown only in this response: `ronda probe --key …`")


class LeaseRequest(InputModel):
    wait: float = Field(25.0, ge=0, le=25, description="Seconds to wait for a scan before answering without one")
    version: str | None = Field(None, max_length=40, description="The probe's Ronda version")


class ProbeJob(OutputModel):
    scan_id: str
    tenant_id: str
    site_id: str
    profile: str
    target: str | list[str]
    options: dict[str, Any] = Field(description="The scanner's ScanOptions: targets, ports, profile and knobs")
    lease_seconds: float = Field(description="Report progress at least this often, or the scan is taken over")


class LeaseResponse(OutputModel):
    scan: ProbeJob | None = Field(description="A scan to run now, or null when none came within `wait`")
    probe_id: str
    site_id: str


class FoundHost(InputModel):
    ip: str = Field(max_length=45)
    hostname: str | None = Field(None, max_length=255)
    mac: str | None = Field(None, max_length=40)
    vendor: str | None = Field(None, max_length=200)
    os_guess: str | None = Field(None, max_length=200)
    device_type: str | None = Field(None, max_length=40)


class FoundPort(InputModel):
    ip: str = Field(max_length=45)
    port: int = Field(ge=1, le=65535)
    protocol: str = Field("tcp", max_length=8)
    service: str | None = Field(None, max_length=100)
    product: str | None = Field(None, max_length=200)
    version: str | None = Field(None, max_length=100)


class ProgressReport(InputModel):
    progress_percent: float = Field(0.0, ge=0, le=100)
    hosts_found: int = Field(0, ge=0)
    ports_found: int = Field(0, ge=0)
    probes_sent: int = Field(0, ge=0)
    eta_seconds: float | None = Field(None, ge=0)
    hosts: list[FoundHost] = Field(default_factory=list, max_length=5000, description="Hosts found since last time")
    ports: list[FoundPort] = Field(default_factory=list, max_length=20000, description="Ports found since last time")


class FailReport(InputModel):
    reason: str = Field(min_length=1, max_length=500)


class ProbeScanState(OutputModel):
    scan_id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    keep_running: bool = Field(description="False: stop scanning (the scan was stopped or taken over)")
