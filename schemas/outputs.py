"""The output messages: type changes, nurture actions and dead letters."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = 1


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


class HeldOutAction(NurtureAction):
    """A nurture action its customer was held out of (the action's control group, `holdout` in the playbook):
    not on the actions topic but on `journey.holdouts`, key = customer id, with the id and fields it would
    have been sent with, so the groups can be compared."""

    held_out: Literal[True] = Field(True, description="Always true: the customer did not receive this action.")


class DeadLetter(BaseModel):
    """An input message that could not be processed, or a range of input offsets Kafka deleted before
    they were applied (`error` starts with `offsets lost:`; `source_offset` is the first of the range,
    and the raw key and value are null); on `journey.dead-letter`.

    Never larger than the worker's producer may send (`JOURNEY_MAX_PUBLISH_BYTES`): a raw key or
    value that would not fit is cut (`truncated`), and its size and SHA-256 say what was received.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    raw_key_b64: str | None = Field(
        description="The message key, base64 (only its first bytes when `truncated`); null when it had none."
    )
    raw_value_b64: str | None = Field(
        description="The message value as received, base64 (only its first bytes when `truncated`)."
    )
    raw_key_size: int | None = Field(None, ge=0, description="The key's size in bytes as received; null: no key.")
    raw_key_sha256: str | None = Field(None, description="SHA-256 (hex) of the whole key as received.")
    raw_value_size: int | None = Field(None, ge=0, description="The value's size in bytes as received; null: no value.")
    raw_value_sha256: str | None = Field(None, description="SHA-256 (hex) of the whole value as received.")
    truncated: bool = Field(
        False, description="The raw key or value was cut to keep the dead letter within the producer's message limit."
    )
    error: str = Field(description="What was wrong, in words a producer can act on (at most 4,096 characters).")
    source_topic: str
    source_partition: int
    source_offset: int
    received_at: AwareDatetime


class Erasure(BaseModel):
    """The audit record of one customer forgotten; on `journey.erasures`, key = customer id.

    Nothing else about the customer is in it: the record is what stays once everything else is gone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    erasure_id: str = Field(description="The id of the erasure request's event: a re-delivery gives the same one.")
    customer_id: str
    requested_by: str
    requested_at: AwareDatetime = Field(description="The request's event time.")
