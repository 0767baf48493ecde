"""The control catalogues: one JSON file per framework under frameworks/, loaded and checked once."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

FRAMEWORK_DIR = Path(__file__).with_name("frameworks")
FRAMEWORKS = ("iso27001", "soc2")


class Control(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    theme: str
    description: str
    evidence: tuple[str, ...] = Field(min_length=1)
    note: str = ""


class Framework(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    version: str
    description: str
    controls: tuple[Control, ...]


@cache
def framework(framework_id: str) -> Framework:
    """The framework's catalogue; every evidence key it names must be in the registry."""
    if framework_id not in FRAMEWORKS:
        raise KeyError(framework_id)
    from ronda.compliance.registry import EVIDENCE

    data = json.loads((FRAMEWORK_DIR / f"{framework_id}.json").read_text(encoding="utf-8"))
    loaded = Framework.model_validate(data)
    unknown = {key for control in loaded.controls for key in control.evidence} - set(EVIDENCE)
    if unknown:
        raise ValueError(f"{framework_id}: unknown evidence queries {sorted(unknown)}")
    ids = [control.id for control in loaded.controls]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{framework_id}: duplicate control ids")
    return loaded
