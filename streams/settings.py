"""Every setting of the service, read from `JOURNEY_*` environment variables.

Where the service connects, how it batches, and which rules and playbook files it
classifies with (thresholds live in those files, not in the environment).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from streams.core.model import Model
    from streams.core.timeguard import TimeGuard


class Settings(BaseSettings):
    """Connection, topic and batching settings. Defaults suit the production compose stack."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    redis_url: str = Field("redis://localhost:6379/0")
    key_prefix: str = Field(
        "journey", description="Prefix of every Redis key, so several deployments can share a Redis."
    )

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
        4000,
        description="Most events taken per batch (one Redis read and one write per batch); larger batches amortise more.",
    )
    batch_within_s: PositiveFloat = Field(0.05, description="Longest wait to fill a batch.")
    warm_states: NonNegativeInt = Field(
        50_000,
        description="Most customer states a worker keeps in memory after writing them, so it need not read them back "
        "from Redis (0: none).",
    )
    max_message_bytes: PositiveInt = Field(64 * 1024, description="Larger input messages are dead-lettered.")
    max_publish_bytes: int = Field(
        1_048_576,  # aiokafka's default max_request_size (streams.core.intake.MESSAGE_LIMIT)
        ge=64 * 1024,
        description="Largest message the worker publishes (its producer's max_request_size; the broker's "
        "message.max.bytes must be at least this): dead letters are cut to fit.",
    )
    max_event_ahead_s: NonNegativeFloat = Field(
        300.0,
        description="Events dated later than the wall clock plus this are dead-lettered (in both clock modes).",
    )
    earliest_event_time: AwareDatetime = Field(
        datetime(2000, 1, 1, tzinfo=UTC), description="Events dated before this are dead-lettered."
    )

    clock: Literal["wall", "event"] = Field(
        "wall",
        description="What decides inactivity: the wall clock, or per partition the latest event time applied (replays, demos).",
    )
    sweep_interval_s: PositiveFloat = Field(1.0, description="How often due inactivity checks are swept.")
    retry_max_backoff_s: PositiveFloat = Field(
        5.0, description="Longest pause between retries while Redis or Kafka is down."
    )

    rules_file: Path | None = Field(
        None, description="The customer-type rules (YAML); default: the shipped streams/core/rules/default.yaml."
    )
    playbook_file: Path | None = Field(
        None, description="The nurture playbook (YAML); default: the shipped streams/core/playbook/default.yaml."
    )
    dedupe_window: PositiveInt = Field(
        32, description="How many recent event ids per customer are remembered to drop re-sent duplicates."
    )

    def load_model(self) -> Model:
        """The rules and playbook these settings name, validated (a bad file raises, naming the line)."""
        from streams.core.model import load_model

        return load_model(self.rules_file, self.playbook_file, self.dedupe_window)

    def time_guard(self) -> TimeGuard:
        """The range of event times these settings accept (`streams/core/timeguard.py`)."""
        from streams.core.timeguard import TimeGuard

        return TimeGuard(self.earliest_event_time.timestamp(), self.max_event_ahead_s)

    @property
    def output_topics(self) -> list[str]:
        return [self.topic_type_changes, self.topic_nurture_actions, self.topic_dead_letter]
