"""Every setting of the service, read from `JOURNEY_*` environment variables.

Where the service connects, how it batches, and which rules and playbook files it
classifies with (thresholds live in those files, not in the environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.store.keys import RESERVED_PREFIXES
from streams.text import redact_url

if TYPE_CHECKING:
    from streams.core.model import Model


#: A Kafka topic name, as Kafka itself allows them (the names are also part of Redis key names).
TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


class Settings(BaseSettings):
    """Connection, topic and batching settings. Defaults suit the production compose stack."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    redis_url: SecretStr = Field(
        SecretStr("redis://localhost:6379/0"),
        description="The state store, e.g. redis://[[user]:password@]host:6379/0 (secret: never printed).",
    )
    redis_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signed the Redis server's certificate (with a rediss:// URL)."
    )
    redis_ssl_certfile: Path | None = Field(
        None, description="Client certificate, when Redis requires one (mutual TLS)."
    )
    redis_ssl_keyfile: Path | None = Field(None, description="The client certificate's private key.")
    redis_ssl_check_hostname: bool = Field(
        True, description="Check that the Redis server's certificate names the host in the URL (unsafe to turn off)."
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

    @model_validator(mode="after")
    def _redis_tls_consistent(self) -> Settings:
        tls_files = [f for f in (self.redis_ssl_cafile, self.redis_ssl_certfile, self.redis_ssl_keyfile) if f]
        if tls_files and urlsplit(self.redis_dsn).scheme != "rediss":
            raise ValueError("JOURNEY_REDIS_SSL_* files are set but JOURNEY_REDIS_URL is not a rediss:// URL")
        if bool(self.redis_ssl_certfile) != bool(self.redis_ssl_keyfile):
            raise ValueError("JOURNEY_REDIS_SSL_CERTFILE and JOURNEY_REDIS_SSL_KEYFILE go together (mutual TLS)")
        for path in tls_files:
            if not path.is_file():
                raise ValueError(f"{path} does not exist or is not a file")
        return self

    @field_validator("key_prefix")
    @classmethod
    def _not_reserved(cls, prefix: str) -> str:
        if prefix in RESERVED_PREFIXES:
            raise ValueError(f"{prefix!r} is reserved for the keys of `journey replay --redis`; choose another prefix")
        return prefix

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
        return tuple(s for s in (self.redis_dsn, password) if s)

    def load_model(self) -> Model:
        """The rules and playbook these settings name, validated (a bad file raises, naming the line)."""
        from streams.core.model import load_model

        return load_model(self.rules_file, self.playbook_file, self.dedupe_window)

    @property
    def output_topics(self) -> list[str]:
        return [self.topic_type_changes, self.topic_nurture_actions, self.topic_dead_letter]
