from __future__ import annotations

from typing import Literal

from pydantic import Field

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime

# Events a hook can subscribe to. The first group is what Ronda publishes on its bus; the second
# are names NetRecon documents for its webhooks (§6.3), accepted so a client written for it works
# unchanged, although Ronda has no such events yet. Per-host and per-port scan progress is left out
# on purpose: a webhook per open port would flood a receiver.
RONDA_EVENTS = (
    "alert.created", "alert.acknowledged", "alert.resolved",
    "scan.started", "scan.completed", "scan.failed", "scan.cancelled",
    "device.discovered", "device.updated", "device.offline", "device.port_opened", "device.compliance_changed",
    "agent.offline", "cve.matched", "service.review_overdue",
)
DOCUMENTED_ONLY = (
    "ids.alert", "honeypot.hit", "rogue.detected", "backup.completed", "backup.failed", "anomaly.detected",
)
KNOWN_EVENTS = RONDA_EVENTS + DOCUMENTED_ONLY
ALL_EVENTS = "*"
TEST_EVENT = "webhook.test"

HookStatus = Literal["active", "inactive", "failing"]
DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]


class WebhookCreate(InputModel):
    url: str = Field(..., min_length=1, max_length=2048, description="http or https URL that receives the POSTs")
    events: list[str] = Field(
        ..., min_length=1, max_length=50,
        description=f"Event names to deliver, or \"{ALL_EVENTS}\" for all; one of: {', '.join(KNOWN_EVENTS)}",
    )
    secret: str | None = Field(
        None, min_length=16, max_length=200,
        description="HMAC-SHA256 signing secret; generated (and shown once, in this response) when absent",
    )
    description: str | None = Field(None, max_length=500)
    active: bool = Field(True, description="An inactive hook receives nothing")


class WebhookUpdate(InputModel):
    """PATCH: only the fields sent change."""

    url: str | None = Field(None, min_length=1, max_length=2048)
    events: list[str] | None = Field(None, min_length=1, max_length=50)
    secret: str | None = Field(None, min_length=16, max_length=200, description="A new signing secret")
    rotate_secret: bool = Field(False, description="Generate a new secret, returned once in this response")
    description: str | None = Field(None, max_length=500)
    active: bool | None = None


class WebhookRead(OutputModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    active: bool
    status: HookStatus = Field(description="failing once a delivery has failed all 5 attempts, until one succeeds")
    consecutive_failures: int = Field(description="Failed attempts since the last success")
    failing_since: UtcDatetime | None
    last_delivery_at: UtcDatetime | None
    last_success_at: UtcDatetime | None
    last_failure_at: UtcDatetime | None
    created_at: UtcDatetime


class WebhookCreated(WebhookRead):
    """The only response that ever carries the secret."""

    secret: str = Field(description="The signing secret; shown only now, store it safely")


class DeliveryAttempt(OutputModel):
    attempt: int
    attempted_at: str
    status_code: int | None
    duration_ms: int | None
    error: str | None


class DeliveryRead(OutputModel):
    id: str = Field(description="Also sent as the X-Ronda-Delivery header")
    webhook_id: str
    event: str
    event_id: str = Field(description="The body's id")
    status: DeliveryStatus
    attempt: int = Field(description="Attempts made so far (at most 5)")
    max_attempts: int
    status_code: int | None = Field(description="HTTP status of the last attempt, if any answer came")
    duration_ms: int | None = Field(description="Response time of the last attempt")
    error: str | None = Field(description="Why the last attempt failed")
    next_attempt_at: UtcDatetime | None = Field(description="When the next retry is due (pending only)")
    last_attempt_at: UtcDatetime | None
    delivered_at: UtcDatetime | None
    created_at: UtcDatetime
    attempts: list[DeliveryAttempt] = Field(description="Every attempt, oldest first")


class WebhookUpdated(WebhookRead):
    secret: str | None = Field(None, description="The new secret, only when rotate_secret generated one")
