"""Every setting of the service, read from `JOURNEY_*` environment variables.

Where the service connects, how it batches, which rules and playbook files it classifies
with (thresholds live in those files, not in the environment), and in which currency it
keeps spend (with the rates into it, and the largest order it takes).
"""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.currencies import check_currency
from schemas.timezones import check_timezone
from schemas.touchpoint import MAX_AMOUNT
from streams.text import redact_url

if TYPE_CHECKING:
    from streams.core.model import Model
    from streams.core.timeguard import TimeGuard


log = logging.getLogger(__name__)

#: Key prefixes a deployment may not use: `journey replay --redis` keeps its keys under them
#: (`streams/store/keys.py`, `REPLAY_STATES`).
RESERVED_PREFIXES = frozenset({"replay"})

#: A Kafka topic name, as Kafka itself allows them (the names are also part of Redis key names).
TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
#: A shorter bearer token could be guessed; it is also too short for the log filter to redact safely.
MIN_TOKEN_LENGTH = 16


class Settings(BaseSettings):
    """Connection, topic and batching settings. Defaults suit the production compose stack."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    # How every Kafka client authenticates and encrypts (README, "Connecting to a secured Kafka").
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_oauth_token_file: Path | None = Field(
        None, description="OAUTHBEARER: a file holding the current token, read again for every new connection."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA certificates (PEM) to verify brokers by; default: the system's."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="The client certificate's private key (PEM).")
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that the broker's certificate is for the name connected to. Off is unsafe."
    )
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
    redis_cluster: bool = Field(
        False,
        description="JOURNEY_REDIS_URL names a node of a Redis Cluster: every client is redis-py's cluster "
        "client (it finds the other nodes), with the same TLS options.",
    )
    history_length: int = Field(
        3, ge=1, le=100, description="Type changes kept per customer in Redis, newest first, for explain and profiles."
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
    topic_holdouts: TopicName = "journey.holdouts"
    topic_erasures: TopicName = Field(
        "journey.erasures", description="One audit record per customer forgotten (id, time, who asked)."
    )
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
    churn_model_file: Path | None = Field(
        None,
        description="The churn model (YAML or JSON, as `journey fit` writes it) the rules' churn signals score "
        "with; unset: those signals have no value.",
    )
    dedupe_window: PositiveInt = Field(
        16, description="How many recent event ids per customer are remembered to drop re-sent duplicates."
    )
    currency: Annotated[str, AfterValidator(check_currency)] = Field(
        "EUR", description="The currency (ISO 4217) the state keeps spend in; orders in another are converted."
    )
    currency_rates_file: Path | None = Field(
        None,
        description="Rates into `currency` (YAML); an order in a currency it does not list is dead-lettered. "
        "Default: none (only orders in `currency` are taken).",
    )
    max_order_amount: float = Field(
        1_000_000.0,
        gt=0,
        le=MAX_AMOUNT,
        allow_inf_nan=False,
        description="Largest order amount, in `currency`; larger orders are dead-lettered.",
    )

    default_timezone: Annotated[str, AfterValidator(check_timezone)] = Field(
        "UTC",
        max_length=64,
        description="The IANA zone of quiet hours for customers whose events name no zone and no country "
        "with one (e.g. Europe/Berlin).",
    )

    holdout_salt: SecretStr = Field(
        SecretStr("journey-holdout-v1"),
        description="Key of the holdout draws (BLAKE2b over customer id and action): set one per deployment, "
        "1-64 bytes, kept private so the groups cannot be told from ids; changing it redraws every group.",
    )

    @field_validator("holdout_salt")
    @classmethod
    def _salt_fits_blake2b(cls, salt: SecretStr) -> SecretStr:
        if not 1 <= len(salt.get_secret_value().encode()) <= 64:
            raise ValueError("JOURNEY_HOLDOUT_SALT must be 1 to 64 bytes (a BLAKE2b key)")
        return salt

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

    @field_validator(
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_sasl_oauth_token_file",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "kafka_ssl_key_password",
        "churn_model_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """`VAR=` (as compose and Kubernetes pass an unset optional) means unset; the two choices ignore case."""
        if isinstance(value, str) and not value.strip():
            return "PLAINTEXT" if info.field_name == "kafka_security_protocol" else None
        if isinstance(value, str) and info.field_name in ("kafka_security_protocol", "kafka_sasl_mechanism"):
            return value.strip().upper()
        return value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Self:
        """Refuse, naming the variables, every combination that could only fail (or silently not apply) later."""
        check_kafka_security(self)
        return self

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
        kafka = [
            secret.get_secret_value() for secret in (self.kafka_sasl_password, self.kafka_ssl_key_password) if secret
        ]
        token = self.http_token.get_secret_value() if self.http_token is not None else None
        salt = self.holdout_salt.get_secret_value()
        if salt == "journey-holdout-v1":  # the documented default hides nothing
            salt = ""
        # The Redis URL itself is no secret without its password (which `redact_url` masks in any URL):
        # listed whole, it would hide the host from every log line that names it.
        return tuple(s for s in (password, *kafka, token, salt) if s)

    def load_model(self) -> Model:
        """The rules, playbook, churn model and money settings these settings name, validated (a bad file raises,
        naming the line). Rules that read a churn signal with no churn model configured are logged once, as a
        warning: they run, but no comparison on a churn score ever holds."""
        from streams.core.churn.modelfile import load_churn_model
        from streams.core.model import load_model
        from streams.core.money import load_money

        money = load_money(self.currency, self.currency_rates_file, self.max_order_amount)
        churn = None if self.churn_model_file is None else load_churn_model(self.churn_model_file)
        model = load_model(
            self.rules_file,
            self.playbook_file,
            self.dedupe_window,
            money,
            default_timezone=self.default_timezone,
            holdout_salt=self.holdout_salt.get_secret_value(),
            churn=churn,
        )
        if churn is None and model.rules.churn_signals:
            log.warning(
                "rules %s read the churn signals %s but no churn model is configured (JOURNEY_CHURN_MODEL_FILE): "
                "they have no value, so no rule comparing them holds",
                model.rules.source,
                ", ".join(sorted(model.rules.churn_signals)),
            )
        elif churn is not None:
            log.info("churn model %s (%s)", churn.label, churn.params)
        return model

    def time_guard(self) -> TimeGuard:
        """The range of event times these settings accept (`streams/core/timeguard.py`)."""
        from streams.core.timeguard import TimeGuard

        return TimeGuard(self.earliest_event_time.timestamp(), self.max_event_ahead_s)

    @property
    def output_topics(self) -> list[str]:
        return [
            self.topic_type_changes,
            self.topic_nurture_actions,
            self.topic_dead_letter,
            self.topic_holdouts,
            self.topic_erasures,
        ]


def check_kafka_security(s: Settings) -> None:
    """Raise a ValueError naming the JOURNEY_KAFKA_* variables when the security settings cannot work together."""
    protocol, mechanism = s.kafka_security_protocol, s.kafka_sasl_mechanism
    where = f"JOURNEY_KAFKA_SECURITY_PROTOCOL={protocol}"
    sasl_values = {
        "JOURNEY_KAFKA_SASL_MECHANISM": mechanism,
        "JOURNEY_KAFKA_SASL_USERNAME": s.kafka_sasl_username,
        "JOURNEY_KAFKA_SASL_PASSWORD": s.kafka_sasl_password,
        "JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE": s.kafka_sasl_oauth_token_file,
    }
    tls_files = {
        "JOURNEY_KAFKA_SSL_CAFILE": s.kafka_ssl_cafile,
        "JOURNEY_KAFKA_SSL_CERTFILE": s.kafka_ssl_certfile,
        "JOURNEY_KAFKA_SSL_KEYFILE": s.kafka_ssl_keyfile,
        "JOURNEY_KAFKA_SSL_KEY_PASSWORD": s.kafka_ssl_key_password,
    }
    if not protocol.startswith("SASL_"):
        if stray := [name for name, value in sasl_values.items() if value is not None]:
            raise ValueError(f"{', '.join(stray)} set, but {where} does not use SASL: use SASL_SSL (or SASL_PLAINTEXT)")
    elif mechanism is None:
        raise ValueError(
            f"{where} needs JOURNEY_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
        )
    elif mechanism == "OAUTHBEARER":
        if s.kafka_sasl_oauth_token_file is None:
            raise ValueError("JOURNEY_KAFKA_SASL_MECHANISM=OAUTHBEARER needs JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE")
        if s.kafka_sasl_username is not None or s.kafka_sasl_password is not None:
            raise ValueError(
                "OAUTHBEARER authenticates with the token file, not JOURNEY_KAFKA_SASL_USERNAME / _PASSWORD"
            )
    else:
        missing = [
            name
            for name, value in (
                ("JOURNEY_KAFKA_SASL_USERNAME", s.kafka_sasl_username),
                ("JOURNEY_KAFKA_SASL_PASSWORD", s.kafka_sasl_password),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"JOURNEY_KAFKA_SASL_MECHANISM={mechanism} needs {' and '.join(missing)}")
        if s.kafka_sasl_oauth_token_file is not None:
            raise ValueError(f"JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE is only used with OAUTHBEARER, not {mechanism}")

    if not protocol.endswith("SSL"):
        if stray := [name for name, value in tls_files.items() if value is not None]:
            raise ValueError(f"{', '.join(stray)} set, but {where} does not use TLS: use SSL or SASL_SSL")
        return
    for name, path in tls_files.items():
        if isinstance(path, Path) and not path.is_file():
            raise ValueError(f"{name}: no such file: {path}")
    cert, key = s.kafka_ssl_certfile, s.kafka_ssl_keyfile
    if s.kafka_ssl_key_password is not None and cert is None:
        raise ValueError("JOURNEY_KAFKA_SSL_KEY_PASSWORD set without JOURNEY_KAFKA_SSL_CERTFILE (mutual TLS)")
    if key is not None and cert is None:
        raise ValueError("JOURNEY_KAFKA_SSL_KEYFILE set without JOURNEY_KAFKA_SSL_CERTFILE (the client certificate)")
    if cert is not None and key is None and "PRIVATE KEY-----" not in cert.read_text(errors="replace"):
        raise ValueError(
            "JOURNEY_KAFKA_SSL_CERTFILE needs JOURNEY_KAFKA_SSL_KEYFILE (its private key), unless the file holds both"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if s.kafka_ssl_cafile is not None:
        try:
            context.load_verify_locations(cafile=s.kafka_ssl_cafile)
        except ssl.SSLError as exc:
            raise ValueError(
                f"JOURNEY_KAFKA_SSL_CAFILE: {s.kafka_ssl_cafile} holds no PEM certificate ({exc.reason})"
            ) from None
    if cert is not None:
        password = s.kafka_ssl_key_password.get_secret_value() if s.kafka_ssl_key_password else ""
        try:  # a password callback always: with none, OpenSSL would prompt on the terminal for an encrypted key
            context.load_cert_chain(cert, key, password=lambda: password)
        except ssl.SSLError as exc:
            key_text = (key or cert).read_text(errors="replace")
            if exc.reason == "KEY_VALUES_MISMATCH":
                why = "the key is not the certificate's"
            elif "ENCRYPTED" in key_text:
                why = "the key is encrypted: JOURNEY_KAFKA_SSL_KEY_PASSWORD is missing or wrong"
            else:
                why = f"not a PEM certificate and private key ({exc.reason or exc})"
            raise ValueError(f"JOURNEY_KAFKA_SSL_CERTFILE / JOURNEY_KAFKA_SSL_KEYFILE: {why}") from None
