"""The output messages: type changes, nurture actions and dead letters."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Dimension(StrEnum):
    LIFECYCLE = "lifecycle"
    TRAIT = "trait"


class Reason(BaseModel):
    """Why a change happened: the rule that fired and the values it saw."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: str = Field(description="Rule name, e.g. `lifecycle.loyal`.")
    evidence: dict[str, Any] = Field(description="The state values and thresholds the rule compared.")


class TypeChange(BaseModel):
    """A customer's lifecycle type (or a trait) changed; on `journey.type-changes`, key = customer id."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    change_id: str = Field(description="Deterministic: the same customer, change and cause give the same id.")
    customer_id: str
    dimension: Dimension
    from_: str | None = Field(alias="from", description="Previous type; null for a customer's first type.")
    to: str | None = Field(description="New type; for traits, null means the trait was removed.")
    reason: Reason
    caused_by: str = Field(description="The event id, or `inactivity@<due time>` for a change made by the clock.")
    at: AwareDatetime = Field(description="Event time of the cause (the due time for inactivity).")


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class NurtureAction(BaseModel):
    """An instruction to marketing automation; on `journey.nurture-actions`, key = customer id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    action_id: str = Field(description="Deterministic: a consumer that sees the same id twice acts once.")
    customer_id: str
    action: str = Field(description="Template / campaign / queue name, e.g. `welcome_onboarding`.")
    channel: str
    priority: Priority
    params: dict[str, Any] = Field(default_factory=dict)
    triggered_by: str = Field(description="The change id that triggered this action.")
    at: AwareDatetime


class DeadLetter(BaseModel):
    """An input message that could not be processed, or a range of input offsets Kafka deleted before
    they were applied (`error` starts with `offsets lost:`; `source_offset` is the first of the range,
    and the raw key and value are null); on `journey.dead-letter`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    raw_key_b64: str | None = Field(description="The message key, base64; null when it had none.")
    raw_value_b64: str | None = Field(description="The message value exactly as received, base64.")
    error: str = Field(description="What was wrong, in words a producer can act on.")
    source_topic: str
    source_partition: int
    source_offset: int
    received_at: AwareDatetime
