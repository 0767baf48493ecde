"""The tenant's service policy (stored in `tenants.compliance_policy["services"]`) and what it demands.

A rule lists the data classifications for which a questionnaire answer must be true; a service
holding such data without it is `non_compliant`. `upcoming_review_days` is how far ahead the
dashboards look for reviews coming due.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field

from ronda.core.schemas import InputModel, OutputModel

Classification = Literal["public", "internal", "confidential", "restricted"]
CLASSIFICATION_ORDER: tuple[str, ...] = ("public", "internal", "confidential", "restricted")

# Policy key -> the questionnaire answer it requires.
RULES: dict[str, str] = {
    "require_sso_for": "sso_enabled",
    "require_mfa_for": "mfa_enforced",
    "require_audit_logging_for": "audit_logging_enabled",
    "require_encryption_at_rest_for": "encrypted_at_rest",
}
DEFAULT_SERVICE_POLICY: dict[str, Any] = {
    "require_sso_for": ["confidential", "restricted"],
    "require_mfa_for": ["confidential", "restricted"],
    "require_audit_logging_for": ["restricted"],
    "require_encryption_at_rest_for": ["restricted"],
    "upcoming_review_days": 30,
}


class Answers(Protocol):
    data_classification: str
    sso_enabled: bool
    mfa_enforced: bool
    audit_logging_enabled: bool
    encrypted_at_rest: bool


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    requirements: Mapping[str, frozenset[str]]  # answer name -> classifications that require it
    upcoming_review_days: int

    @classmethod
    def of(cls, compliance_policy: Mapping[str, Any] | None) -> ServicePolicy:
        stored = (compliance_policy or {}).get("services")
        merged = {**DEFAULT_SERVICE_POLICY, **(stored if isinstance(stored, Mapping) else {})}
        requirements = {answer: frozenset(str(c) for c in merged.get(key) or ()) for key, answer in RULES.items()}
        return cls(requirements, int(merged.get("upcoming_review_days") or 30))

    def issues(self, answers: Answers) -> list[str]:
        """Every rule the answers break, as a readable reason (empty: the answers comply)."""
        out = []
        for answer, classifications in self.requirements.items():
            if answers.data_classification in classifications and not getattr(answers, answer):
                out.append(f"{answer} is required for {answers.data_classification} data")
        return out


def _ordered(values: list[str]) -> list[str]:
    return [c for c in CLASSIFICATION_ORDER if c in set(values)]


class ServicePolicyRead(OutputModel):
    require_sso_for: list[str] = Field(description="Classifications whose services must have SSO")
    require_mfa_for: list[str] = Field(description="Classifications whose services must enforce MFA")
    require_audit_logging_for: list[str] = Field(description="Classifications that require audit logging")
    require_encryption_at_rest_for: list[str] = Field(description="Classifications that require encryption at rest")
    upcoming_review_days: int = Field(description="How many days ahead dashboards list upcoming reviews")


class ServicePolicyUpdate(InputModel):
    """Fields given replace the current values; fields left out stay as they are."""

    require_sso_for: list[Classification] | None = Field(None, max_length=4)
    require_mfa_for: list[Classification] | None = Field(None, max_length=4)
    require_audit_logging_for: list[Classification] | None = Field(None, max_length=4)
    require_encryption_at_rest_for: list[Classification] | None = Field(None, max_length=4)
    upcoming_review_days: int | None = Field(None, ge=1, le=365)

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True)
        return {key: _ordered(value) if isinstance(value, list) else value for key, value in out.items()}
