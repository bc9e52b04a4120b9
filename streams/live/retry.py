"""Wait-and-retry for Redis and Kafka outages: the worker pauses, it never skips events.

Only what passes by itself is retried. A Kafka error no retry mends (a message too large for the
broker, a client not authorised, a topic that does not exist) raises `PermanentError`, which
stops the worker with a message saying what to fix: retrying it would stall every partition
behind it for good, and quietly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import errors as kafka
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Failures that pass when the service comes back (Kafka's: see `transient`). Not among them:
#: `KafkaSetupError` (TLS or SASL refused, streams/kafka/security.py), which only a change of settings fixes.
TRANSIENT = (ConnectionError, TimeoutError, BusyLoadingError, OSError, asyncio.TimeoutError)

#: Kafka errors that no retry mends, with what the operator must do about them.
PERMANENT_KAFKA: tuple[tuple[tuple[type[kafka.KafkaError], ...], str], ...] = (
    (
        (kafka.MessageSizeTooLargeError, kafka.RecordTooLargeError, kafka.RecordListTooLargeError),
        "a message is larger than the producer (JOURNEY_MAX_PUBLISH_BYTES) or the broker (message.max.bytes, "
        "the topic's max.message.bytes) takes: make the broker's limits at least JOURNEY_MAX_PUBLISH_BYTES, or "
        "lower JOURNEY_MAX_PUBLISH_BYTES to them",
    ),
    (
        (
            kafka.TopicAuthorizationFailedError,
            kafka.GroupAuthorizationFailedError,
            kafka.ClusterAuthorizationFailedError,
            kafka.TransactionalIdAuthorizationFailed,
            kafka.DelegationTokenAuthorizationFailed,
        ),
        "this client is not authorised: grant it Read on the input topic and its consumer group, Write and "
        "Describe on the output topics (and Create, for the topics it declares at start)",
    ),
    (
        (
            kafka.AuthenticationFailedError,
            kafka.AuthenticationMethodNotSupported,
            kafka.SaslAuthenticationFailed,
            kafka.UnsupportedSaslMechanismError,
            kafka.IllegalSaslStateError,
        ),
        "the broker refused this client's credentials or mechanism: check the connection settings",
    ),
    (
        # aiokafka marks it retriable, and has already waited for the topic's metadata before raising it.
        (kafka.UnknownTopicOrPartitionError, kafka.InvalidTopicError, kafka.InvalidPartitionsError),
        "a topic does not exist or its name is not valid: create it (journey topics) or correct the "
        "JOURNEY_TOPIC_* setting",
    ),
)
#: Kafka errors aiokafka does not mark retriable that pass all the same (a broker restarting, a
#: rebalance, a timeout), and the plain `KafkaError` it raises for lost metadata and connections.
TRANSIENT_KAFKA = (
    kafka.KafkaTimeoutError,
    kafka.KafkaUnavailableError,
    kafka.BrokerNotAvailableError,
    kafka.ReplicaNotAvailableError,
    kafka.RebalanceInProgressError,
    kafka.UnknownError,
)


class PermanentError(RuntimeError):
    """A failure no retry mends: the worker stops, and the message says what the operator must fix."""


def advice(exc: kafka.KafkaError) -> str | None:
    """What to do about a Kafka error no retry mends; None when it may pass by itself."""
    for kinds, what_to_do in PERMANENT_KAFKA:
        if isinstance(exc, kinds):
            return what_to_do
    if exc.retriable or isinstance(exc, TRANSIENT_KAFKA) or type(exc) is kafka.KafkaError:
        return None
    if isinstance(exc, kafka.BrokerResponseError | kafka.KafkaConfigurationError | kafka.IncompatibleBrokerVersion):
        return "the broker refused the request, and says retrying will not change that: fix the cause it names"
    return None  # the client's own errors (connections, metadata, timeouts): they pass when the broker is back


def permanent(exc: BaseException, what: str) -> PermanentError | None:
    """The `PermanentError` that `exc` amounts to for the operation `what`, or None if it may pass by itself."""
    if not isinstance(exc, kafka.KafkaError):
        return None
    what_to_do = advice(exc)
    if what_to_do is None:
        return None
    return PermanentError(f"{what} failed, and retrying cannot mend it: {type(exc).__name__}: {exc}. {what_to_do}")


async def retrying(op: Callable[[], Awaitable[T]], what: str, max_backoff: float) -> T:
    """Run `op` until it succeeds, backing off from 0.1 s up to `max_backoff` between tries.

    Raises `PermanentError` at once for a Kafka error no retry mends; any other error that is not
    an outage is raised as it is.
    """
    delay = 0.1
    attempt = 0
    while True:
        try:
            return await op()
        except kafka.KafkaError as exc:
            error = permanent(exc, what)
            if error is not None:
                raise error from exc
            attempt += 1
            log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, attempt, exc, delay)
        except TRANSIENT as exc:
            attempt += 1
            log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, attempt, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_backoff)
