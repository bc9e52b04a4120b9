"""A Kafka error no retry mends stops the worker: exit code 3 and one error line saying what to fix."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from streams.live import worker
from streams.live.retry import PermanentError
from streams.settings import Settings


def test_a_permanent_error_stops_the_worker_with_exit_code_3(monkeypatch, caplog):
    async def run(self):
        raise PermanentError("Kafka publish failed, and retrying cannot mend it: ...; create it (journey topics)")

    monkeypatch.setattr(worker.Worker, "run", run)
    with caplog.at_level(logging.ERROR, logger=worker.log.name), pytest.raises(SystemExit) as stopped:
        worker.run_worker(Settings())
    assert stopped.value.code == 3
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "stopping: Kafka publish failed, and retrying cannot mend it: ...; create it (journey topics)"
    ]


def test_the_consumers_own_permanent_error_stops_it_too(monkeypatch, caplog):
    async def run(self):
        raise TopicAuthorizationFailedError("journey.touchpoints")

    monkeypatch.setattr(worker.Worker, "run", run)
    with caplog.at_level(logging.ERROR, logger=worker.log.name), pytest.raises(SystemExit) as stopped:
        worker.run_worker(Settings())
    assert stopped.value.code == 3
    assert any("not authorised" in r.getMessage() for r in caplog.records)


def test_an_outage_escaping_the_worker_is_not_called_permanent(monkeypatch):
    async def run(self):
        raise KafkaConnectionError("gone")

    monkeypatch.setattr(worker.Worker, "run", run)
    with pytest.raises(KafkaConnectionError):
        worker.run_worker(Settings())
