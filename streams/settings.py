"""Every setting of the service, read from `JOURNEY_*` environment variables.

Two groups: where the service connects and how it batches (`Settings`), and the
classification thresholds (`Thresholds`), which the pure core takes on its own so
that tests and replay need no Kafka or Redis settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY = 86_400.0


class Thresholds(BaseModel):
    """Lifecycle thresholds; each is also an environment variable (`JOURNEY_LOYAL_MIN_PURCHASES`, …)."""

    loyal_min_purchases: PositiveInt = Field(
        3, description="Paid purchases that make a customer loyal (while they keep their rhythm)."
    )
    at_risk_rhythm_multiple: PositiveFloat = Field(
        3.0, description="A customer is at risk after this many of their own mean inter-purchase intervals without a purchase."
    )
    at_risk_floor_days: PositiveFloat = Field(
        30.0, description="…but never sooner than this many days after their last purchase."
    )
    first_rhythm_days: PositiveFloat = Field(
        30.0, description="The rhythm assumed for a customer with a single purchase (no interval yet)."
    )
    dedupe_window: PositiveInt = Field(
        32, description="How many recent event ids per customer are remembered to drop re-sent duplicates."
    )


class Settings(BaseSettings):
    """Connection, topic and batching settings. Defaults suit the production compose stack."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    redis_url: str = Field("redis://localhost:6379/0")
    key_prefix: str = Field("journey", description="Prefix of every Redis key, so several deployments can share a Redis.")

    topic_touchpoints: str = "journey.touchpoints"
    topic_type_changes: str = "journey.type-changes"
    topic_nurture_actions: str = "journey.nurture-actions"
    topic_dead_letter: str = "journey.dead-letter"
    partitions: PositiveInt = Field(8, description="Partitions of the input topic (outputs get the same).")
    replication_factor: PositiveInt = 1

    consumer_group: str = Field("journey-processor", description="Kafka consumer group of the workers.")
    session_timeout_s: PositiveFloat = Field(
        30.0, description="Consumer session timeout. Tansu holds a join for half of it: use 3-6 s against Tansu."
    )
    heartbeat_interval_s: PositiveFloat = 3.0

    batch_size: PositiveInt = Field(
        4000, description="Most events taken per batch (one Redis read and one write per batch); larger batches amortise more."
    )
    batch_within_s: PositiveFloat = Field(0.05, description="Longest wait to fill a batch.")
    max_message_bytes: PositiveInt = Field(64 * 1024, description="Larger input messages are dead-lettered.")

    clock: Literal["wall", "event"] = Field(
        "wall",
        description="What decides inactivity: the wall clock, or per partition the latest event time applied (replays, demos).",
    )
    sweep_interval_s: PositiveFloat = Field(1.0, description="How often due inactivity checks are swept.")
    retry_max_backoff_s: PositiveFloat = Field(5.0, description="Longest pause between retries while Redis or Kafka is down.")

    loyal_min_purchases: PositiveInt = Thresholds.model_fields["loyal_min_purchases"].default
    at_risk_rhythm_multiple: PositiveFloat = Thresholds.model_fields["at_risk_rhythm_multiple"].default
    at_risk_floor_days: PositiveFloat = Thresholds.model_fields["at_risk_floor_days"].default
    first_rhythm_days: PositiveFloat = Thresholds.model_fields["first_rhythm_days"].default
    dedupe_window: PositiveInt = Thresholds.model_fields["dedupe_window"].default

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(**{name: getattr(self, name) for name in Thresholds.model_fields})

    @property
    def output_topics(self) -> list[str]:
        return [self.topic_type_changes, self.topic_nurture_actions, self.topic_dead_letter]
