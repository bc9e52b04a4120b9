"""Kafka errors split: outages are retried with back-off, errors no retry mends stop at once, saying what to fix."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import errors as kafka
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.live import retry
from streams.live.retry import PermanentError, retrying


def failing(times: int, exc: BaseException):
    """An operation that raises `exc` its first `times` calls, then returns how many calls it took."""
    calls = 0

    async def op() -> int:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise exc
        return calls

    return op


@pytest.mark.parametrize(
    "exc,words",
    [
        (kafka.MessageSizeTooLargeError("a message for t of 2000000 bytes"), "JOURNEY_MAX_PUBLISH_BYTES"),
        (kafka.RecordTooLargeError(), "message.max.bytes"),
        (kafka.TopicAuthorizationFailedError("journey.type-changes"), "not authorised"),
        (kafka.GroupAuthorizationFailedError("journey-processor"), "not authorised"),
        (kafka.ClusterAuthorizationFailedError(), "not authorised"),
        (kafka.SaslAuthenticationFailed(), "credentials"),
        (kafka.UnknownTopicOrPartitionError(), "journey topics"),
        (kafka.InvalidTopicError(), "JOURNEY_TOPIC_"),
        (kafka.PolicyViolationError(), "retrying will not change that"),
        (kafka.UnsupportedVersionError(), "retrying will not change that"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, Exception) else None,
)
def test_an_error_no_retry_mends_stops_at_once_and_says_what_to_fix(exc, words):
    """Before: every KafkaError was retried as if the broker were only away, so these stalled the worker for good."""
    op = failing(3, exc)
    with pytest.raises(PermanentError) as raised:
        asyncio.run(retrying(op, "Kafka publish", 0.01))
    text = str(raised.value)
    assert text.startswith("Kafka publish failed, and retrying cannot mend it: ")
    assert type(exc).__name__ in text and words in text
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        kafka.KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]"),
        kafka.KafkaTimeoutError(),
        kafka.RequestTimedOutError(),
        kafka.NotLeaderForPartitionError(),
        kafka.LeaderNotAvailableError(),
        kafka.NodeNotReadyError(),
        kafka.BrokerNotAvailableError(),
        kafka.NotEnoughReplicasError(),
        kafka.KafkaError("Unable to get cluster metadata over all known brokers"),
        RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        OSError("network is unreachable"),
    ],
    ids=lambda x: type(x).__name__,
)
def test_outages_are_retried_with_back_off(exc, caplog):
    with caplog.at_level(logging.WARNING, logger=retry.__name__):
        assert asyncio.run(retrying(failing(3, exc), "Redis read", 0.01)) == 4
    assert [r.getMessage().split(" failed (attempt ")[1][0] for r in caplog.records] == ["1", "2", "3"]
    assert all("retrying in" in r.getMessage() for r in caplog.records)


def test_an_error_that_is_no_outage_is_raised_as_it_is():
    with pytest.raises(ValueError):
        asyncio.run(retrying(failing(1, ValueError("a bug")), "Redis read", 0.01))


def test_every_non_retriable_broker_error_is_permanent_unless_known_to_pass():
    """Whatever aiokafka adds later: a broker error it does not mark retriable stops, unless listed as passing."""
    for exc_type in vars(kafka).values():
        if not (isinstance(exc_type, type) and issubclass(exc_type, kafka.BrokerResponseError)):
            continue
        if exc_type in (kafka.BrokerResponseError, kafka.NoError):
            continue
        exc = exc_type()
        expected_permanent = (not exc.retriable and not isinstance(exc, retry.TRANSIENT_KAFKA)) or isinstance(
            exc, kafka.UnknownTopicOrPartitionError
        )
        assert (retry.permanent(exc, "x") is not None) == expected_permanent, exc_type.__name__
