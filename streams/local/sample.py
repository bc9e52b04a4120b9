"""Synthetic customer journeys: the bundled demo sample and the benchmark's load.

Deterministic for a given seed. Each customer follows one archetype (browser, one-time
buyer, regular, lapsing regular, comeback, supported buyer) through the three stages,
so every lifecycle type and transition of the pipeline shows up.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

SAMPLE_FILE = Path(__file__).parent / "data" / "sample-journeys.jsonl"
SAMPLE_START = datetime(2026, 1, 1, tzinfo=UTC)

PRE = [
    "ad_click",
    "social_engagement",
    "page_view",
    "review_read",
    "content_view",
    "search",
    "newsletter_signup",
    "demo_request",
    "form_submit",
    "referral_visit",
]
BROWSE = ["catalog_view", "product_view", "add_to_cart", "remove_from_cart", "presales_chat", "checkout_start"]
POST = [
    "email_open",
    "email_click",
    "product_usage",
    "survey_response",
    "review_written",
    "support_ticket",
    "referral_made",
]
STAGE = {
    **{k: "pre_purchase" for k in PRE},
    **{k: "purchase" for k in [*BROWSE, "purchase", "coupon_applied"]},
    **{k: "post_purchase" for k in POST},
}
COUNTRIES = [("PT", "pt-PT"), ("BR", "pt-BR"), ("US", "en-US"), ("GB", "en-GB"), ("CN", "zh-CN"), ("RU", "ru-RU")]
ARCHETYPES = ["browser", "one_time", "regular", "lapsing", "comeback", "supported"]


def _payload(kind: str, rng: random.Random) -> dict | None:
    if kind == "purchase":
        coupon = rng.random() < 0.3
        return {
            "kind": "order",
            "amount": round(rng.uniform(15, 400), 2),
            "currency": "EUR",
            "discount": round(rng.uniform(2, 20), 2) if coupon else 0,
            "coupon": "SAVE10" if coupon else None,
        }
    if kind == "survey_response":
        return {"kind": "score", "csat": rng.randint(1, 5), "nps": rng.randint(0, 10)}
    if kind == "review_written":
        return {"kind": "score", "rating": rng.randint(1, 5)}
    if kind in ("support_ticket", "presales_chat"):
        return {
            "kind": "support",
            "topic": rng.choice(["billing", "how-to", "delivery"]),
            "sentiment": round(rng.uniform(-1, 1), 2),
            "wait_seconds": rng.randint(10, 1800),
        }
    return None


def _journey(index: int, rng: random.Random, start: datetime, span_days: float) -> list[tuple[datetime, str]]:
    """(time, touchpoint kind) pairs of one customer, in time order."""
    archetype = ARCHETYPES[index % len(ARCHETYPES)]
    t = start + timedelta(days=rng.uniform(0, span_days * 0.3))
    steps: list[tuple[datetime, str]] = []

    def visit(kinds: list[str], n: int) -> None:
        nonlocal t
        for _ in range(n):
            t += timedelta(hours=rng.uniform(0.1, 30))
            steps.append((t, rng.choice(kinds)))

    def buy(gap_days: float) -> None:
        nonlocal t
        t += timedelta(days=gap_days * rng.uniform(0.8, 1.2))
        visit(BROWSE, rng.randint(1, 3))
        t += timedelta(minutes=rng.uniform(1, 30))
        steps.append((t, "purchase"))
        visit(POST, rng.randint(0, 2))

    visit(PRE, rng.randint(2, 6))
    if archetype == "browser":
        visit(PRE + BROWSE, rng.randint(2, 8))
    elif archetype == "one_time":
        buy(rng.uniform(1, 10))
    elif archetype in ("regular", "supported"):
        rhythm = rng.uniform(7, 25)
        for _ in range(rng.randint(4, 9)):
            buy(rhythm)
            if archetype == "supported":
                visit(["support_ticket", "survey_response"], 1)
    elif archetype == "lapsing":
        for _ in range(rng.randint(3, 5)):
            buy(rng.uniform(8, 15))
    elif archetype == "comeback":
        for _ in range(3):
            buy(rng.uniform(5, 12))
        t += timedelta(days=rng.uniform(60, 120))
        buy(1)
        buy(10)
    return [(at, kind) for at, kind in steps if at < start + timedelta(days=span_days)]


def generate(customers: int, seed: int = 7, start: datetime = SAMPLE_START, span_days: float = 365.0) -> Iterator[dict]:
    """Touchpoint events of `customers` customers, merged in event-time order."""
    rng = random.Random(seed)

    def one(index: int) -> Iterator[tuple[datetime, int, dict]]:
        crng = random.Random(rng.random() + index)
        cid = f"cust-{index:06d}"
        country, language = crng.choice(COUNTRIES)
        for n, (at, kind) in enumerate(_journey(index, crng, start, span_days)):
            event: dict[str, object] = {
                "event_id": f"{cid}-{n:04d}",
                "customer_id": cid,
                "occurred_at": at.isoformat().replace("+00:00", "Z"),
                "stage": STAGE[kind],
                "touchpoint": kind,
                "channel": crng.choice(["web", "app", "email"] if kind in POST else ["web", "app", "store"]),
            }
            if n == 0:
                event.update(country=country, language=language, segment="e-commerce")
            payload = _payload(kind, crng)
            if payload:
                event["payload"] = payload
            yield at, index, event

    streams = [list(one(i)) for i in range(customers)]
    for _, _, event in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield event


def bad_messages() -> list[tuple[bytes | None, bytes]]:
    """(key, value) pairs that must each be dead-lettered, one per kind of bad input."""
    good = {
        "event_id": "bad-0",
        "customer_id": "cust-bad",
        "occurred_at": "2026-03-01T10:00:00Z",
        "stage": "pre_purchase",
        "touchpoint": "page_view",
        "channel": "web",
    }

    def variant(**changes) -> bytes:
        return json.dumps({**good, **changes}).encode()

    without_time = dict(good)
    del without_time["occurred_at"]
    return [
        (b"cust-bad", b"{this is not json"),
        (b"cust-bad", variant(event_id="bad-1", channel=42)),
        (b"cust-bad", variant(event_id="bad-2", touchpoint="telepathy")),
        (b"cust-bad", variant(event_id="bad-3", stage="post_purchase")),
        (b"cust-bad", json.dumps(without_time).encode()),
        (b"cust-bad", variant(event_id="bad-5", occurred_at="2026-03-01T10:00:00")),
        (b"cust-bad", variant(event_id="bad-6", segment="x" * 50, channel="y" * 40, padding="z" * 100_000)),
        (None, variant(event_id="bad-7")),
    ]


def write_sample(path: Path = SAMPLE_FILE, customers: int = 300, seed: int = 7) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w") as out:
        for event in generate(customers, seed):
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    return count


if __name__ == "__main__":
    print(f"wrote {write_sample()} events to {SAMPLE_FILE}")
