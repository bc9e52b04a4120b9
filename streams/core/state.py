"""What the processor remembers per customer: one compact record in Redis.

Times are epoch seconds (floats) to keep the record small and the arithmetic cheap.
Only facts that cannot be derived are stored: the average spend and the purchase
rhythm are computed from the totals and the first / last purchase times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ConfigDict, TypeAdapter


def described(default_factory, description: str = ""):
    """A dataclass field with a mutable default and a description."""
    return field(default_factory=default_factory, metadata={"description": description})


@dataclass(slots=True)
class CustomerState:
    """A plain slots dataclass, not a pydantic model: the core sets its fields many times per
    event, and pydantic's `__setattr__` made that the worker's largest cost. pydantic still
    validates it on the way in from Redis and serialises it on the way out (`_ADAPTER`).
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    customer_id: str
    first_seen: float
    last_seen: float
    last_by_stage: dict[str, float] = described(dict)
    counts: dict[str, int] = described(dict, "Events per touchpoint kind.")

    purchases: int = 0
    total_spend: float = 0.0
    first_purchase_at: float | None = None
    last_purchase_at: float | None = None
    coupon_orders: int = 0

    support_contacts: int = 0
    support_sentiment_sum: float = 0.0
    support_sentiment_n: int = 0
    scores: dict[str, float] = described(dict, "Latest csat / nps / ces / rating.")

    country: str | None = None
    language: str | None = None
    segment: str | None = None

    lifecycle: str | None = None
    lifecycle_since: float | None = None
    traits: dict[str, float] = described(dict, "Trait name -> time it was entered.")

    actions_sent: dict[str, float] = described(dict, "Action -> last time sent (cooldowns).")
    actions_suppressed: int = 0
    recent_events: list[str] = described(list, "Fingerprints of the latest event ids.")

    def clone(self) -> "CustomerState":
        """A copy whose containers can be changed without touching this one (spelled out: it runs per event)."""
        return CustomerState(
            self.customer_id, self.first_seen, self.last_seen, dict(self.last_by_stage), dict(self.counts),
            self.purchases, self.total_spend, self.first_purchase_at, self.last_purchase_at, self.coupon_orders,
            self.support_contacts, self.support_sentiment_sum, self.support_sentiment_n, dict(self.scores),
            self.country, self.language, self.segment,
            self.lifecycle, self.lifecycle_since, dict(self.traits),
            dict(self.actions_sent), self.actions_suppressed, list(self.recent_events),
        )

    def to_json(self) -> bytes:
        """The compact Redis record: fields at their defaults are left out."""
        return _ADAPTER.dump_json(self, exclude_defaults=True)

    @staticmethod
    def from_json(raw: bytes | str) -> "CustomerState":
        return _ADAPTER.validate_json(raw)

    def as_dict(self) -> dict:
        return _ADAPTER.dump_python(self)

    @property
    def average_spend(self) -> float:
        return self.total_spend / self.purchases if self.purchases else 0.0

    @property
    def mean_purchase_interval(self) -> float | None:
        """Mean seconds between purchases; None until there are two."""
        if self.purchases < 2 or self.first_purchase_at is None or self.last_purchase_at is None:
            return None
        return (self.last_purchase_at - self.first_purchase_at) / (self.purchases - 1)

    @property
    def coupon_share(self) -> float:
        return self.coupon_orders / self.purchases if self.purchases else 0.0

    @property
    def mean_support_sentiment(self) -> float | None:
        return self.support_sentiment_sum / self.support_sentiment_n if self.support_sentiment_n else None


_ADAPTER = TypeAdapter(CustomerState)
