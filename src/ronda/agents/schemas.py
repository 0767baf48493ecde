"""Agent enrolment tokens, enrolment, heartbeats and the agent list."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime
from ronda.devices.schemas import normalize_hostname, parse_mac

MAX_TOKEN_HOURS = 8760
MAX_TOKEN_USES = 100_000


class EnrollmentTokenCreate(InputModel):
    label: str = Field("", max_length=100, description="What the token is for, e.g. 'Berlin laptops'")
    expires_in_hours: int = Field(24, ge=1, le=MAX_TOKEN_HOURS, description="Hours until the token stops working")
    max_uses: int | None = Field(
        1, ge=1, le=MAX_TOKEN_USES, description="Enrolments it allows; null means unlimited until it expires"
    )
    owner_user_id: str | None = Field(None, max_length=40, description="Devices enrolled with it belong to this user")
    site_id: str | None = Field(None, max_length=40, description="Devices enrolled with it are placed in this site")


class EnrollmentTokenRead(OutputModel):
    id: str
    token_prefix: str = Field(description="The start of the token, to recognise it")
    label: str
    expires_at: UtcDatetime
    max_uses: int | None
    uses: int
    owner_user_id: str | None
    site_id: str | None
    created_by: str | None
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None
    is_active: bool = Field(description="Neither revoked, expired nor used up")


class EnrollmentTokenCreated(EnrollmentTokenRead):
    """The only response that ever carries the token itself."""

    token: str = Field(description="The enrolment token; shown only now")


class AgentEnroll(InputModel):
    token: str = Field(
        ..., min_length=10, max_length=200, validation_alias=AliasChoices("token", "deployment_token"),
        description="The enrolment token (also accepted as deployment_token)",
    )
    hostname: str = Field(..., min_length=1, max_length=255)
    serial_number: str | None = Field(None, max_length=100)
    os_type: str = Field(..., min_length=1, max_length=40, description="macos, windows, linux, ...")
    os_version: str | None = Field(None, max_length=100)
    platform: str | None = Field(None, max_length=40, description="e.g. darwin-arm64, linux-amd64")
    agent_version: str | None = Field(None, max_length=40)
    mac: str | None = Field(None, max_length=32, description="The primary interface's MAC address")

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        cleaned = normalize_hostname(value)
        if cleaned is None:
            raise ValueError("must not be empty")
        return cleaned

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if not value:
            return None
        mac = parse_mac(value)
        if mac is None:
            raise ValueError("is not a MAC address (use AA:BB:CC:DD:EE:FF)")
        return mac

    @field_validator("os_type")
    @classmethod
    def _os_type(cls, value: str) -> str:
        return value.lower()


class AgentEnrolled(OutputModel):
    agent_id: str
    device_id: str
    credential: str = Field(description="The agent's credential; shown only now. Send it as X-API-Key or Bearer")
    tenant_id: str
    heartbeat_interval: int = Field(description="Seconds between heartbeats")
    report_interval: int = Field(description="Seconds between full reports")


class Heartbeat(InputModel):
    agent_version: str | None = Field(None, max_length=40, description="The running agent's version, if it changed")


class HeartbeatAck(OutputModel):
    status: str = "ok"
    server_time: UtcDatetime
    report_due: bool = Field(description="True when the server has no report within report_interval")
    heartbeat_interval: int
    report_interval: int


class AgentRead(OutputModel):
    id: str
    device_id: str
    hostname: str | None
    platform: str | None
    agent_version: str | None
    ip_address: str | None
    enrolled_at: UtcDatetime
    last_heartbeat_at: UtcDatetime | None
    last_report_at: UtcDatetime | None
    is_online: bool = Field(description="A heartbeat arrived within RONDA_AGENT_OFFLINE_AFTER seconds")
    revoked: bool
    revoked_at: UtcDatetime | None
