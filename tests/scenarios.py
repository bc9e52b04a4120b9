"""Scripted customer journeys, one per customer type of the shipped rules, as data.

Each `Scenario` is a short journey that must produce one type change (dimension, from/to,
reason rule, key evidence values, cause and time) and the playbook's action for it, and a
near-miss journey, one threshold short, that must not produce it. Traits that decay also
carry the steps that clear them and the expected `trait.<name>.cleared` change.

The table is plain data so that it can be run through the pure core (tests/unit/core/test_scenarios.py)
or through the live broker: every step is either a `TouchpointEvent` (produce it, keyed by its
customer id) or an `Advance` (let the clock reach that instant with no event of this customer:
`advance()` in the core; with the event clock of a live deployment, an event of another
customer on the same partition at that time).

Times are days after `T0`; every customer is in the home market (country PT, language pt-PT)
unless the scenario is about `international`. Expected values are written from the journey and
the thresholds of `streams/core/rules/default.yaml`, not taken from the code's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from timeline import Timeline

from schemas import (
    STAGE_OF,
    OrderPayload,
    ScorePayload,
    SupportPayload,
    Touchpoint,
    TouchpointEvent,
)

#: A Monday, 09:00 UTC.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = 1 / 24
MINUTE = HOUR / 60
SECOND = MINUTE / 60
#: Sentinel for `Expect.caused_by`: the change is made by the clock (`inactivity@<at>`).
INACTIVITY = "inactivity"


_TIMELINE = Timeline(T0)
at, ts, iso_z = _TIMELINE.at, _TIMELINE.ts, _TIMELINE.iso_z


@dataclass(frozen=True)
class Advance:
    """Let the clock reach T0 + `day` with no event of this customer."""

    day: float


Step = TouchpointEvent | Advance


@dataclass(frozen=True)
class Expect:
    """One type change, as it must appear on `journey.type-changes`."""

    dimension: str  # lifecycle | trait
    from_: str | None
    to: str | None
    rule: str
    #: Key evidence values (a subset of the change's evidence).
    evidence: dict[str, Any]
    #: When it happens (days after T0): the causing event's time, or the due time for the clock.
    at_day: float
    #: The causing event's id, or INACTIVITY for a change made by the clock.
    caused_by: str


@dataclass(frozen=True)
class Scenario:
    name: str
    events: list[Step]
    expect_type: Expect
    #: The playbook action the change triggers (sent, unless `expect_suppressed` is set).
    expect_action: str
    near_miss_events: list[Step]
    #: A phrase of the suppression reason, when the playbook suppresses the action.
    expect_suppressed: str | None = None
    #: For a trait that decays: steps after `events` that clear it, and the clearing change.
    clear_events: list[Step] = field(default_factory=list)
    expect_cleared: Expect | None = None

    @property
    def customer(self) -> str:
        return _customer_of(self.events)

    @property
    def near_miss_customer(self) -> str:
        return _customer_of(self.near_miss_events)


def _customer_of(steps: list[Step]) -> str:
    return next(s.customer_id for s in steps if isinstance(s, TouchpointEvent))


class Journey:
    """A small builder: `Journey("c").view(0).buy(1).steps` - event ids are `<customer>:<n>`."""

    def __init__(self, customer: str, country: str = "PT", language: str = "pt-PT", channel: str = "web"):
        self.customer, self.country, self.language, self.channel = customer, country, language, channel
        self.steps: list[Step] = []

    @property
    def last_id(self) -> str:
        return next(s.event_id for s in reversed(self.steps) if isinstance(s, TouchpointEvent))

    def ev(
        self,
        day: float,
        touchpoint: Touchpoint | str,
        payload=None,
        channel: str | None = None,
        country: str | None = None,
        language: str | None = None,
    ) -> Journey:
        tp = Touchpoint(touchpoint)
        self.steps.append(
            TouchpointEvent(
                event_id=f"{self.customer}:{len(self.steps)}",
                customer_id=self.customer,
                occurred_at=at(day),
                stage=STAGE_OF[tp],
                touchpoint=tp,
                channel=channel or self.channel,
                country=country or self.country,
                language=language or self.language,
                payload=payload,
            )
        )
        return self

    def view(self, day: float, n: int = 1, touchpoint: str = "page_view", every: float = HOUR) -> Journey:
        for i in range(n):
            self.ev(day + i * every, touchpoint)
        return self

    def buy(
        self,
        day: float,
        amount: float = 50.0,
        coupon: str | None = None,
        discount: float = 0.0,
        channel: str | None = None,
    ) -> Journey:
        return self.ev(
            day,
            "purchase",
            OrderPayload(amount=amount, currency="EUR", coupon=coupon, discount=discount),
            channel=channel,
        )

    def ticket(
        self,
        day: float,
        topic: str | None = None,
        sentiment: float | None = None,
        wait_seconds: float | None = None,
        kind: str = "support_ticket",
    ) -> Journey:
        return self.ev(day, kind, SupportPayload(topic=topic, sentiment=sentiment, wait_seconds=wait_seconds))

    def survey(self, day: float, **scores) -> Journey:
        return self.ev(day, "survey_response", ScorePayload(**scores))

    def review(self, day: float, rating: int) -> Journey:
        return self.ev(day, "review_written", ScorePayload(rating=rating))

    def advance(self, day: float) -> Journey:
        self.steps.append(Advance(day))
        return self


def _lifecycle() -> list[Scenario]:
    out = []

    j = Journey("scn-prospect").view(0)
    out.append(
        Scenario(
            "prospect",
            j.steps,
            Expect("lifecycle", None, "prospect", "lifecycle.prospect", {}, 0, "scn-prospect:0"),
            "lead_nurture_sequence",
            # a customer first seen buying is never a prospect
            Journey("scn-prospect-near").buy(0).steps,
        )
    )

    j = Journey("scn-free").view(0).ev(1, "free_signup")
    out.append(
        Scenario(
            "free_user",
            j.steps,
            Expect("lifecycle", "prospect", "free_user", "lifecycle.free_user", {"free_plan": True}, 1, j.last_id),
            "upgrade_offer",
            Journey("scn-free-near").view(0).ev(1, "newsletter_signup").steps,
        )
    )

    j = Journey("scn-new").view(0).ev(1, "add_to_cart").buy(2, amount=42.5)
    out.append(
        Scenario(
            "new",
            j.steps,
            Expect("lifecycle", "prospect", "new", "lifecycle.new", {"purchases": 1}, 2, j.last_id),
            "welcome_onboarding",
            # everything up to the payment, which fails: no paid purchase
            Journey("scn-new-near")
            .view(0)
            .ev(1, "add_to_cart")
            .ev(1.5, "checkout_start")
            .ev(2, "payment_failed")
            .steps,
        )
    )

    # loyal: 3 purchases
    j = Journey("scn-loyal").buy(0).buy(10).buy(20)
    out.append(
        Scenario(
            "loyal",
            j.steps,
            Expect("lifecycle", "new", "loyal", "lifecycle.loyal", {"purchases": 3}, 20, j.last_id),
            "loyalty_programme_invite",
            Journey("scn-loyal-near").buy(0).buy(10).steps,
        )
    )

    # advocate: loyal, then a promoter score (NPS >= 9), nothing negative
    j = Journey("scn-advocate").buy(0).buy(10).buy(20).survey(21, nps=9)
    out.append(
        Scenario(
            "advocate",
            j.steps,
            Expect(
                "lifecycle",
                "loyal",
                "advocate",
                "lifecycle.advocate",
                {
                    "purchases": 3,
                    "latest_nps": 9,
                    "count_referral_made": 0,
                    "negative_reviews": 0,
                    "negative_contacts_14d": 0,
                },
                21,
                j.last_id,
            ),
            "referral_programme",
            Journey("scn-advocate-near").buy(0).buy(10).buy(20).survey(21, nps=8).steps,
        )
    )

    # at_risk: one purchase, so the rhythm is first_rhythm_days = 30; quiet max(30, 3 x 30) = 90 days
    j = Journey("scn-at-risk").buy(0).advance(100)
    out.append(
        Scenario(
            "at_risk",
            j.steps,
            Expect(
                "lifecycle",
                "new",
                "at_risk",
                "lifecycle.at_risk",
                {"purchases": 1, "days_since_last_purchase": 90.0, "purchase_rhythm_days": 30.0},
                90,
                INACTIVITY,
            ),
            "win_back_offer",
            Journey("scn-at-risk-near").buy(0).advance(90 - SECOND).steps,
        )
    )

    # lapsed: quiet max(180, 6 x 30) = 180 days (at risk on the way, at 90)
    j = Journey("scn-lapsed").buy(0).advance(200)
    out.append(
        Scenario(
            "lapsed",
            j.steps,
            Expect(
                "lifecycle",
                "at_risk",
                "lapsed",
                "lifecycle.lapsed",
                {"purchases": 1, "days_since_last_purchase": 180.0, "purchase_rhythm_days": 30.0},
                180,
                INACTIVITY,
            ),
            "last_win_back",
            Journey("scn-lapsed-near").buy(0).advance(180 - SECOND).steps,
        )
    )
    return out


def _traits() -> list[Scenario]:
    out = []

    # impulsive: bought 1.5 h after the first product view, no review read
    j = Journey("scn-impulsive").ev(0, "product_view").buy(1.5 * HOUR)
    out.append(
        Scenario(
            "impulsive",
            j.steps,
            Expect(
                "trait",
                None,
                "impulsive",
                "trait.impulsive",
                {"hours_first_view_to_purchase": 1.5, "pre_buy_reviews": 0},
                1.5 * HOUR,
                j.last_id,
            ),
            "urgency_promotion",
            Journey("scn-impulsive-near").ev(0, "product_view").buy(2 * HOUR + MINUTE).steps,
        )
    )

    # discount_seeker: two purchases, both with a coupon (share 1.0 >= 0.5)
    j = Journey("scn-discount").buy(0, coupon="WELCOME10").buy(10, coupon="SPRING", discount=5)
    out.append(
        Scenario(
            "discount_seeker",
            j.steps,
            Expect(
                "trait",
                None,
                "discount_seeker",
                "trait.discount_seeker",
                {"purchases": 2, "coupon_share": 1.0, "count_coupon_applied": 0},
                10,
                j.last_id,
            ),
            "lifecycle_coupon",
            # one coupon purchase (2 needed) and two coupons applied (3 needed)
            Journey("scn-discount-near")
            .ev(0, "coupon_applied")
            .buy(0.01, coupon="WELCOME10")
            .ev(10, "coupon_applied")
            .steps,
        )
    )

    # informed_buyer: three reviews read before the first purchase
    j = Journey("scn-informed").view(0, n=3, touchpoint="review_read", every=1)
    out.append(
        Scenario(
            "informed_buyer",
            j.steps,
            Expect(
                "trait",
                None,
                "informed_buyer",
                "trait.informed_buyer",
                {"pre_buy_reviews": 3, "count_review_read": 3},
                2,
                j.last_id,
            ),
            "expert_content",
            # two before buying (3 needed), four in all (5 needed)
            Journey("scn-informed-near")
            .view(0, n=2, touchpoint="review_read", every=1)
            .buy(3)
            .view(4, n=2, touchpoint="review_read", every=1)
            .steps,
        )
    )

    # curious_browser: ten pre-purchase events, never a cart
    j = Journey("scn-curious").view(0, n=10)
    out.append(
        Scenario(
            "curious_browser",
            j.steps,
            Expect(
                "trait",
                None,
                "curious_browser",
                "trait.curious_browser",
                {"purchases": 0, "pre_buy_events": 10, "count_add_to_cart": 0},
                9 * HOUR,
                j.last_id,
            ),
            "strong_call_to_action",
            Journey("scn-curious-near").view(0, n=9).steps,
        )
    )

    # inquisitive: four support contacts within 30 days; drops when the first leaves the window
    j = (
        Journey("scn-inquisitive")
        .ticket(0, "billing")
        .ticket(5, "billing")
        .ticket(10, "delivery")
        .ticket(15, "billing")
    )
    out.append(
        Scenario(
            "inquisitive",
            j.steps,
            Expect("trait", None, "inquisitive", "trait.inquisitive", {"support_contacts_30d": 4}, 15, j.last_id),
            "knowledge_base_routing",
            # the fourth contact comes exactly 30 days after the first: the first has left the window
            Journey("scn-inquisitive-near")
            .ticket(0, "billing")
            .ticket(5, "billing")
            .ticket(10, "delivery")
            .ticket(30, "billing")
            .steps,
            clear_events=[Advance(40)],
            expect_cleared=Expect(
                "trait",
                "inquisitive",
                None,
                "trait.inquisitive.cleared",
                {"support_contacts_30d": 3, "since": iso_z(15)},
                30,
                INACTIVITY,
            ),
        )
    )

    # confused: two how-to questions
    j = Journey("scn-confused").ticket(0, "How do I export my data?").ticket(3, "how to reset the password")
    out.append(
        Scenario(
            "confused",
            j.steps,
            Expect(
                "trait",
                None,
                "confused",
                "trait.confused",
                {"howto_contacts": 2, "count_payment_failed": 0, "returns": 0},
                3,
                j.last_id,
            ),
            "tutorial_links",
            Journey("scn-confused-near").ticket(0, "How do I export my data?").ticket(3, "billing address").steps,
        )
    )

    # uncertain: seven pre-purchase events with two cart removals, nothing bought
    j = (
        Journey("scn-uncertain")
        .view(0, n=3)
        .ev(1, "add_to_cart")
        .ev(1.1, "remove_from_cart")
        .ev(2, "add_to_cart")
        .ev(2.1, "remove_from_cart")
    )
    out.append(
        Scenario(
            "uncertain",
            j.steps,
            Expect(
                "trait",
                None,
                "uncertain",
                "trait.uncertain",
                {"purchases": 0, "pre_buy_events": 7, "count_remove_from_cart": 2, "pre_buy_cart_churn": 4},
                2.1,
                j.last_id,
            ),
            "retargeting_audience",
            Journey("scn-uncertain-near")
            .view(0, n=2)
            .ev(1, "add_to_cart")
            .ev(1.1, "remove_from_cart")
            .ev(2, "add_to_cart")
            .ev(2.1, "remove_from_cart")
            .steps,
        )
    )

    # angry: a complaint; cleared 14 days after it by the clock
    j = Journey("scn-angry").buy(0).ticket(10, "broken on arrival", kind="complaint")
    out.append(
        Scenario(
            "angry",
            j.steps,
            Expect(
                "trait",
                None,
                "angry",
                "trait.angry",
                {"days_since_complaint": 0.0, "negative_contacts_14d": 0, "long_waits_14d": 0},
                10,
                j.last_id,
            ),
            "support_escalation_apology",
            # a ticket just above the negative-sentiment line (-0.3), one long wait (2 needed)
            Journey("scn-angry-near").buy(0).ticket(10, "delivery", sentiment=-0.29, wait_seconds=3600).steps,
            clear_events=[Advance(30)],
            expect_cleared=Expect(
                "trait",
                "angry",
                None,
                "trait.angry.cleared",
                {"days_since_complaint": 14.0, "since": iso_z(10)},
                24,
                INACTIVITY,
            ),
        )
    )

    # negative_experience: a 2-star review; cleared by a later 5-star review
    j = Journey("scn-negative").buy(0).review(5, rating=2)
    clear = Journey("scn-negative")
    clear.steps = list(j.steps)
    clear.review(8, rating=5)
    out.append(
        Scenario(
            "negative_experience",
            j.steps,
            Expect(
                "trait",
                None,
                "negative_experience",
                "trait.negative_experience",
                {"days_since_negative_review": 0.0, "days_since_positive_review": None},
                5,
                j.last_id,
            ),
            "personal_outreach_offer",
            Journey("scn-negative-near").buy(0).review(5, rating=3).steps,
            clear_events=clear.steps[len(j.steps) :],
            expect_cleared=Expect(
                "trait",
                "negative_experience",
                None,
                "trait.negative_experience.cleared",
                {"days_since_negative_review": 3.0, "days_since_positive_review": 0.0, "since": iso_z(5)},
                8,
                clear.last_id,
            ),
        )
    )

    # demanding: four contacts 12 h apart = three follow-ups within 24 h this week;
    # cleared when the first follow-up (day 0.5) is 7 days old
    j = Journey("scn-demanding").ticket(0, "order").ticket(0.5, "order").ticket(1, "order").ticket(1.5, "order")
    out.append(
        Scenario(
            "demanding",
            j.steps,
            Expect("trait", None, "demanding", "trait.demanding", {"follow_ups_7d": 3}, 1.5, j.last_id),
            "priority_queue",
            # the last contact comes a day and a second after the previous: not a follow-up
            Journey("scn-demanding-near")
            .ticket(0, "order")
            .ticket(0.5, "order")
            .ticket(1, "order")
            .ticket(2 + SECOND, "order")
            .steps,
            clear_events=[Advance(10)],
            expect_cleared=Expect(
                "trait",
                "demanding",
                None,
                "trait.demanding.cleared",
                {"follow_ups_7d": 2, "since": iso_z(1.5)},
                7.5,
                INACTIVITY,
            ),
        )
    )

    # international: a Spanish customer
    j = Journey("scn-international", country="ES", language="es-ES").view(0)
    out.append(
        Scenario(
            "international",
            j.steps,
            Expect("trait", None, "international", "trait.international", {"international": True}, 0, j.last_id),
            "multilingual_routing",
            # Portuguese spoken in Brazil is still the home language (pt), and the country is PT
            Journey("scn-international-near", country="PT", language="pt-BR").view(0).steps,
        )
    )

    # unpredictable: neutral answers to two surveys (NPS 7 and 8, CSAT 3)
    j = Journey("scn-unpredictable").view(0).survey(1, nps=7, csat=3).survey(31, nps=8)
    out.append(
        Scenario(
            "unpredictable",
            j.steps,
            Expect(
                "trait",
                None,
                "unpredictable",
                "trait.unpredictable",
                {"surveys": 2, "neutral_survey_share": 1.0},
                31,
                j.last_id,
            ),
            "ces_survey",
            Journey("scn-unpredictable-near").view(0).survey(1, nps=7, csat=3).survey(31, nps=9).steps,
        )
    )

    # efficient: four page views, then a purchase, no support
    j = Journey("scn-efficient").view(0, n=4).buy(0.5)
    out.append(
        Scenario(
            "efficient",
            j.steps,
            Expect(
                "trait",
                None,
                "efficient",
                "trait.efficient",
                {"purchases": 1, "pre_buy_events": 4, "support_contacts": 0},
                0.5,
                j.last_id,
            ),
            "concise_options_summary",
            Journey("scn-efficient-near").view(0, n=5).buy(0.5).steps,
        )
    )

    # traditionalist: four purchases over a year, one channel; a year after the first, by the clock
    j = Journey("scn-traditionalist").buy(0).buy(120).buy(240).buy(360).advance(370)
    out.append(
        Scenario(
            "traditionalist",
            j.steps,
            Expect(
                "trait",
                None,
                "traditionalist",
                "trait.traditionalist",
                {"purchases": 4, "days_since_first_purchase": 365.0, "channels_used": 1},
                365,
                INACTIVITY,
            ),
            "change_rationale_briefing",
            Journey("scn-traditionalist-near").buy(0).buy(120).buy(240, channel="app").buy(360).advance(370).steps,
        )
    )

    # change_requester: a change request after a purchase; cleared 30 days later
    j = Journey("scn-change").buy(0).ev(5, "change_request")
    out.append(
        Scenario(
            "change_requester",
            j.steps,
            Expect(
                "trait",
                None,
                "change_requester",
                "trait.change_requester",
                {"count_change_request": 1, "purchases": 1, "days_since_change_request": 0.0},
                5,
                j.last_id,
            ),
            "change_cost_notice",
            # the change request came before any purchase, and the purchase 30 days after it
            Journey("scn-change-near").view(0).ev(1, "change_request").buy(31).steps,
            clear_events=[Advance(40)],
            expect_cleared=Expect(
                "trait",
                "change_requester",
                None,
                "trait.change_requester.cleared",
                {"days_since_change_request": 30.0, "since": iso_z(5)},
                35,
                INACTIVITY,
            ),
        )
    )
    return out


#: Every type of the shipped rules, lifecycle types first.
SCENARIOS: list[Scenario] = _lifecycle() + _traits()
