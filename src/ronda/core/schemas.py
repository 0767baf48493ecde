"""Base classes for request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, StringConstraints

from ronda.core.timeutil import iso

# Passwords are taken exactly as typed: leading and trailing spaces are part of them.
Password = Annotated[str, StringConstraints(strip_whitespace=False, max_length=256)]

# Every timestamp leaves as ISO 8601 UTC with a Z.
UtcDatetime = Annotated[datetime, PlainSerializer(lambda v: iso(v), return_type=str)]


class InputModel(BaseModel):
    """Request bodies: unknown fields are an error, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Message(OutputModel):
    detail: str
