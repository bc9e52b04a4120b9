"""Every metric of `GET /metrics`, in one registry per engine (never prometheus-client's global one).

Named by Prometheus's conventions: one `journey_` prefix, base units (seconds), `_total` on
counters, and no customer id in any label (labels are bounded: dimensions, type and action names
from the rules and playbook, fixed reason kinds, partitions).

Nothing here runs per event. The counters are the processor's own running counts (`Stats` in
`streams/live/processor.py`), read when Prometheus scrapes (`_StatsCollector`); the histograms
are observed once per batch or sweep; the gauges are refreshed by the engine just before a scrape.

What `journey_event_to_change_latency_seconds` measures: for each batch that published outputs,
and for each input partition in it, the time from the Kafka timestamp of that partition's oldest
record in the batch (its CreateTime, as the producer stamped it, or LogAppendTime) to the broker's
acknowledgement of the batch's outputs. That is how stale a type change is when marketing
automation can first read it, measured on clocks that move with the stream — not the event's
own `occurred_at`, which is meaningless for replays and backfills. One observation per partition
per batch (the batch's worst case on it), not per event, so it costs nothing per event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.core.playbook.playbook import HELD_OUT
from streams.core.reasons import LABELS

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
SWEEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: The labels of `journey_events_total`: what became of each input message (they add up to the input read).
EVENT_OUTCOMES = ("applied", "duplicate", "redelivered", "dead_lettered")


def _count(stats: Any, name: str) -> int:
    """A counter of `Stats`, 0 when this version of `Stats` has none of that name."""
    return int(getattr(stats, name, 0) or 0)


def _counts(stats: Any, name: str) -> dict:
    return dict(getattr(stats, name, None) or {})


class Telemetry:
    """One engine's registry: the processor's counters, the batch and sweep histograms, the gauges."""

    def __init__(self, stats: Callable[[], Any], input_topic: str = "") -> None:
        self.registry = CollectorRegistry()
        self.input_topic = input_topic
        self.batch_seconds = Histogram(
            "journey_batch_duration_seconds",
            "Time from a batch taken off Kafka to its effects in Redis and its outputs acknowledged by Kafka.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.latency_seconds = Histogram(
            "journey_event_to_change_latency_seconds",
            "Kafka timestamp of a batch's oldest input record (per partition) to the broker's acknowledgement "
            "of the batch's outputs; observed for batches that published outputs.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sweep_seconds = Histogram(
            "journey_sweep_duration_seconds",
            "Time one inactivity sweep took (due customers advanced, left-over outbox published).",
            buckets=SWEEP_BUCKETS,
            registry=self.registry,
        )
        #: Refreshed before each scrape by the engine: input partition -> records not yet read.
        self.lags: dict[int, int] = {}
        self.assigned: int = 0
        #: None until known (the engine could not read Redis in time): the gauge is then left out.
        self.due_customers: int | None = None
        self.outbox_messages: int | None = None
        self.registry.register(_StatsCollector(stats, self))
        ProcessCollector(registry=self.registry)  # the standard process_* metrics (memory, CPU, open files)

    def observe_latencies(self, acknowledged_at: float, oldest_timestamps_ms: list[int]) -> None:
        """One observation per partition of a batch whose outputs were acknowledged at `acknowledged_at`."""
        for ts in oldest_timestamps_ms:
            if ts is not None and ts > 0:
                self.latency_seconds.observe(max(0.0, acknowledged_at - ts / 1000))


class _StatsCollector(Collector):
    """The processor's counts, read at scrape time."""

    def __init__(self, stats: Callable[[], Any], telemetry: Telemetry) -> None:
        self.stats = stats
        self.telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        by_label = _counts(stats, "dead_letters_by_label")

        events = CounterMetricFamily(
            "journey_events",
            "Input messages by what became of them: applied, duplicate (an event id already applied), "
            "redelivered (an offset already applied, skipped) or dead_lettered.",
            labels=["outcome"],
        )
        # `events` counts what the core took (applied or duplicate); every dead letter is counted apart.
        applied = _count(stats, "events") - _count(stats, "duplicates")
        for outcome, value in zip(
            EVENT_OUTCOMES,
            (applied, _count(stats, "duplicates"), _count(stats, "redelivered"), _count(stats, "dead_lettered")),
            strict=True,
        ):
            events.add_metric([outcome], value)
        yield events
        yield CounterMetricFamily(
            "journey_erasures",
            "Customers forgotten on request (an erasure request, or `journey forget`).",
            value=_count(stats, "erasures"),
        )

        changes = CounterMetricFamily(
            "journey_type_changes",
            "Type changes decided, by dimension (lifecycle, trait), type, and change (entered, or cleared for a trait).",
            labels=["dimension", "type", "change"],
        )
        merged: dict[tuple[str, str, str], int] = {}
        for (dimension, to, from_), value in _counts(stats, "changes_by").items():
            key = (str(getattr(dimension, "value", dimension)), to or from_ or "", "entered" if to else "cleared")
            merged[key] = merged.get(key, 0) + value
        for key, value in sorted(merged.items()):
            changes.add_metric(list(key), value)
        yield changes

        actions = CounterMetricFamily(
            "journey_actions",
            "Nurture actions decided, by action and outcome (sent, suppressed, held_out: the customer is in the "
            "action's holdout group); reason: the suppression's kind (cooldown, lapsed, mood, frequency_cap, "
            "superseded, no_consent), empty otherwise. An action deferred by quiet hours is counted here when it "
            "is released (sent, held out, or suppressed).",
            labels=["action", "outcome", "reason"],
        )
        for (action, kind), value in sorted(
            _counts(stats, "actions_by").items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
        ):
            if kind == HELD_OUT:
                actions.add_metric([action, HELD_OUT, ""], value)
            else:
                actions.add_metric([action, "sent" if kind is None else "suppressed", kind or ""], value)
        yield actions

        deferred = CounterMetricFamily(
            "journey_actions_deferred",
            "Nurture actions decided inside the customer's quiet hours and deferred to their end, by action.",
            labels=["action"],
        )
        for action, value in sorted(_counts(stats, "deferred_by").items()):
            deferred.add_metric([action], value)
        yield deferred

        letters = CounterMetricFamily(
            "journey_dead_letters", "Input messages dead-lettered, by the kind of reason.", labels=["reason"]
        )
        for kind in sorted({*LABELS, *by_label}):
            letters.add_metric([str(kind)], int(by_label.get(kind, 0)))
        yield letters

        for name, attribute, doc in (
            (
                "journey_published_messages",
                "published",
                "Output messages (type changes, actions, dead letters) acknowledged by Kafka.",
            ),
            (
                "journey_fenced_batches",
                "fenced_batches",
                "Batches dropped because another worker had moved the partition on.",
            ),
            ("journey_redis_round_trips", "redis_round_trips", "Round trips to Redis of the batch and sweep paths."),
            (
                "journey_quarantined_customers",
                "quarantined",
                "Customers whose stored state could not be read, set aside.",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=_count(stats, attribute))

        t = self.telemetry
        lag = GaugeMetricFamily(
            "journey_consumer_lag_records",
            "Records of an assigned input partition not yet read (the broker's high watermark minus the position).",
            labels=["topic", "partition"],
        )
        for partition, value in sorted(t.lags.items()):
            lag.add_metric([t.input_topic, str(partition)], value)
        yield lag
        yield GaugeMetricFamily(
            "journey_assigned_partitions", "Input partitions assigned to this worker.", value=t.assigned
        )
        if t.due_customers is not None:
            yield GaugeMetricFamily(
                "journey_due_customers",
                "Customers on this worker's partitions whose inactivity check is due and not yet swept.",
                value=t.due_customers,
            )
        if t.outbox_messages is not None:
            yield GaugeMetricFamily(
                "journey_outbox_messages",
                "Output messages written to Redis and not yet acknowledged by Kafka, on this worker's partitions.",
                value=t.outbox_messages,
            )
