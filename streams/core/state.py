"""What the processor remembers per customer: one compact record in Redis.

Times are epoch seconds (floats) to keep the record small and the arithmetic cheap.
Only facts that cannot be derived are stored: the average spend and the purchase
rhythm are computed from the totals and the first / last purchase times.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CustomerState(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    customer_id: str
    first_seen: float
    last_seen: float
    last_by_stage: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict, description="Events per touchpoint kind.")

    purchases: int = 0
    total_spend: float = 0.0
    first_purchase_at: float | None = None
    last_purchase_at: float | None = None
    coupon_orders: int = 0

    support_contacts: int = 0
    support_sentiment_sum: float = 0.0
    support_sentiment_n: int = 0
    scores: dict[str, float] = Field(default_factory=dict, description="Latest csat / nps / ces / rating.")

    country: str | None = None
    language: str | None = None
    segment: str | None = None

    lifecycle: str | None = None
    lifecycle_since: float | None = None
    traits: dict[str, float] = Field(default_factory=dict, description="Trait name -> time it was entered.")

    actions_sent: dict[str, float] = Field(default_factory=dict, description="Action -> last time sent (cooldowns).")
    actions_suppressed: int = 0
    recent_events: list[str] = Field(default_factory=list, description="Fingerprints of the latest event ids.")

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
