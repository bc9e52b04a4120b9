"""Every setting of the service, read from `JOURNEY_*` environment variables.

Where the service connects, how it batches, and which rules and playbook files it
classifies with (thresholds live in those files, not in the environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.store.keys import RESERVED_PREFIXES
from streams.text import redact_url

if TYPE_CHECKING:
    from streams.core.model import Model


#: A Kafka topic name, as Kafka itself allows them (the names are also part of Redis key names).
TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
#: A shorter bearer token could be guessed; it is also too short for the log filter to redact safely.
MIN_TOKEN_LENGTH = 16


class Settings(BaseSettings):
    """Connection, topic and batching settings. Defaults suit the production compose stack."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    redis_url: SecretStr = Field(
        SecretStr("redis://localhost:6379/0"),
        description="The state store, e.g. redis://[[user]:password@]host:6379/0 (secret: never printed).",
    )
    key_prefix: str = Field(
        "journey",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Prefix of every Redis key, so several deployments can share a Redis: letters, digits, "
        "`_ . -`, no `:` (one deployment's prefix must never be the start of another's keys).",
    )

    topic_touchpoints: TopicName = "journey.touchpoints"
    topic_type_changes: TopicName = "journey.type-changes"
    topic_nurture_actions: TopicName = "journey.nurture-actions"
    topic_dead_letter: TopicName = "journey.dead-letter"
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

    http_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address the worker's HTTP endpoint (metrics, health, profiles) listens on; 0.0.0.0 in the image.",
    )
    http_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        8080, description="Port of the worker's HTTP endpoint; 0 turns it off."
    )
    http_token: SecretStr | None = Field(
        None,
        description="Bearer token the profile route (/customers/{id}) requires. Unset: that route is served only "
        "when the endpoint listens on a loopback address (secret: never printed).",
    )
    health_stall_s: PositiveFloat = Field(
        120.0,
        description="/healthz fails once a batch has been in flight, or Kafka not polled, for longer than this.",
    )
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text, or one JSON object per line.")

    @field_validator("key_prefix")
    @classmethod
    def _not_reserved(cls, prefix: str) -> str:
        if prefix in RESERVED_PREFIXES:
            raise ValueError(f"{prefix!r} is reserved for the keys of `journey replay --redis`; choose another prefix")
        return prefix

    @field_validator("http_token")
    @classmethod
    def _token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or not token.get_secret_value():
            return None  # set but empty: as if unset
        if len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 32`)")
        return token

    @property
    def redis_dsn(self) -> str:
        """The Redis URL itself, password included: for building clients only, never for printing."""
        return self.redis_url.get_secret_value()

    @property
    def redis_shown(self) -> str:
        """The Redis URL without its password: for logs and messages."""
        return redact_url(self.redis_dsn)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value these settings hold, for the log filter to redact wherever it appears."""
        password = urlsplit(self.redis_dsn).password
        token = self.http_token.get_secret_value() if self.http_token is not None else None
        return tuple(s for s in (self.redis_dsn, password, token) if s)

    def load_model(self) -> Model:
        """The rules and playbook these settings name, validated (a bad file raises, naming the line)."""
        from streams.core.model import load_model

        return load_model(self.rules_file, self.playbook_file, self.dedupe_window)

    @property
    def output_topics(self) -> list[str]:
        return [self.topic_type_changes, self.topic_nurture_actions, self.topic_dead_letter]
