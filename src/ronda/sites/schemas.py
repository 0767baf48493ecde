"""Request and response models of /sites."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from ronda.core.schemas import InputModel, OutputModel, UtcDatetime

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
MAX_NETWORKS = 256


def _networks(value: list[str] | None) -> list[str] | None:
    """Each a CIDR (host bits allowed: 10.1.2.3/16 means 10.1.0.0/16), normalised and deduplicated."""
    if value is None:
        return None
    out: list[str] = []
    for item in value:
        try:
            network = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP network in CIDR notation") from None
        if str(network) not in out:
            out.append(str(network))
    return out


class SiteCreate(InputModel):
    name: Name = Field(description="Unique within the tenant")
    description: str | None = Field(None, max_length=2000)
    networks: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=MAX_NETWORKS, description='CIDRs, e.g. ["10.1.0.0/16"]')
    location: str | None = Field(None, max_length=200)

    @field_validator("networks")
    @classmethod
    def _check_networks(cls, value: list[str] | None) -> list[str] | None:
        return _networks(value)


class SiteUpdate(InputModel):
    name: Name | None = None
    description: str | None = Field(None, max_length=2000)
    networks: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(None, max_length=MAX_NETWORKS)
    location: str | None = Field(None, max_length=200)

    @field_validator("networks")
    @classmethod
    def _check_networks(cls, value: list[str] | None) -> list[str] | None:
        return _networks(value)


class SiteRead(OutputModel):
    id: str
    tenant_id: str
    name: str
    description: str | None
    networks: list[str]
    location: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
