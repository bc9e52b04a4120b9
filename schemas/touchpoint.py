"""The input message: one touchpoint of one customer's journey.

The touchpoint kinds and the stage each belongs to come from
`shared/domain/customer-types.md` section 1. A message whose stage contradicts its
kind is refused (it goes to the dead-letter topic), because a producer that gets the
stage wrong has most likely mislabelled the event too.

Every field is bounded, because anyone who can produce to the topic chooses the values and
the core adds some of them up in a customer's state: numbers are finite and within the
ranges below (a JSON `Infinity`, `NaN`, `1e309` or a 400-digit integer is refused, never
turned into a float that a sum or the Redis record cannot hold), and types are strict (`"12.50"`
or `true` is not an amount; a score is a whole number). The bounds here are those of the
format; the operational limit on an order's amount is a setting (`JOURNEY_MAX_ORDER_AMOUNT`),
checked by the core in the state's currency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from schemas.currencies import check_currency
from schemas.timezones import MAX_ZONE_NAME, ZONE_PATTERN, check_timezone

SCHEMA_VERSION: Final = 1

#: Largest amount (and discount) the message format takes, in any currency: far above any real order
#: (a billion euros is 10^13 in the smallest-unit currencies), and small enough that no count of orders
#: a customer could make adds up past what a float holds.
MAX_AMOUNT = 10**15
#: Longest support wait the format takes: a year, in seconds.
MAX_WAIT_SECONDS = 365 * 24 * 3600
#: The event times the format takes, [from, to) as epoch seconds: everything a business records, and far
#: enough from year 9999 that no due time the rules compute from them (an event's time plus some
#: multiple of a customer's rhythm) leaves the range a datetime can show. The worker's clock guard
#: narrows this to what is plausible now.
OCCURRED_FROM = datetime(1970, 1, 1, tzinfo=UTC)
OCCURRED_BEFORE = datetime(3000, 1, 1, tzinfo=UTC)
_FROM_TS, _BEFORE_TS = OCCURRED_FROM.timestamp(), OCCURRED_BEFORE.timestamp()
#: Ids (customer and event): no control characters; they reach Redis keys, logs and terminals.
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

#: Strict, finite numbers (an int is taken as the float it is; text, booleans, inf and nan are refused).
Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT, strict=True, allow_inf_nan=False)]
Sentiment = Annotated[float, Field(ge=-1, le=1, strict=True, allow_inf_nan=False)]
WaitSeconds = Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS, strict=True, allow_inf_nan=False)]
#: An IANA zone name: bounded and of plain characters first, then looked up in the database (`schemas/timezones.py`).
ZoneName = Annotated[
    str, Field(min_length=1, max_length=MAX_ZONE_NAME, pattern=ZONE_PATTERN), AfterValidator(check_timezone)
]
#: Strict whole numbers: 3.0, "3" and true are refused.
StrictWhole = Annotated[int, Field(strict=True)]


class Stage(StrEnum):
    PRE_PURCHASE = "pre_purchase"
    PURCHASE = "purchase"
    POST_PURCHASE = "post_purchase"


class Touchpoint(StrEnum):
    # pre-purchase: awareness and consideration
    SOCIAL_ENGAGEMENT = "social_engagement"
    AD_CLICK = "ad_click"
    REFERRAL_VISIT = "referral_visit"
    REVIEW_READ = "review_read"
    PAGE_VIEW = "page_view"
    CONTENT_VIEW = "content_view"
    SEARCH = "search"
    NEWSLETTER_SIGNUP = "newsletter_signup"
    DEMO_REQUEST = "demo_request"
    FORM_SUBMIT = "form_submit"
    FREE_SIGNUP = "free_signup"
    TRIAL_START = "trial_start"
    # purchase: decision
    PRESALES_CHAT = "presales_chat"
    CATALOG_VIEW = "catalog_view"
    PRODUCT_VIEW = "product_view"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    CHECKOUT_START = "checkout_start"
    COUPON_APPLIED = "coupon_applied"
    PAYMENT_FAILED = "payment_failed"
    PURCHASE = "purchase"
    # post-purchase
    SURVEY_RESPONSE = "survey_response"
    REVIEW_WRITTEN = "review_written"
    SUPPORT_TICKET = "support_ticket"
    COMPLAINT = "complaint"
    RETURN = "return"
    REFUND = "refund"
    CHANGE_REQUEST = "change_request"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    REFERRAL_MADE = "referral_made"
    SUBSCRIPTION_RENEWED = "subscription_renewed"
    SUBSCRIPTION_UPGRADED = "subscription_upgraded"
    SUBSCRIPTION_CANCELLED = "subscription_cancelled"
    PRODUCT_USAGE = "product_usage"
    # consent: at any stage of the journey (the event's `stage` is taken as given)
    CONSENT_GRANTED = "consent_granted"
    CONSENT_REVOKED = "consent_revoked"
    UNSUBSCRIBE = "unsubscribe"
    # erasure: the customer (or someone on their behalf) asks to be forgotten; at any stage
    ERASURE_REQUEST = "erasure_request"


_PRE = {
    Touchpoint.SOCIAL_ENGAGEMENT,
    Touchpoint.AD_CLICK,
    Touchpoint.REFERRAL_VISIT,
    Touchpoint.REVIEW_READ,
    Touchpoint.PAGE_VIEW,
    Touchpoint.CONTENT_VIEW,
    Touchpoint.SEARCH,
    Touchpoint.NEWSLETTER_SIGNUP,
    Touchpoint.DEMO_REQUEST,
    Touchpoint.FORM_SUBMIT,
    Touchpoint.FREE_SIGNUP,
    Touchpoint.TRIAL_START,
}
_PURCHASE = {
    Touchpoint.PRESALES_CHAT,
    Touchpoint.CATALOG_VIEW,
    Touchpoint.PRODUCT_VIEW,
    Touchpoint.ADD_TO_CART,
    Touchpoint.REMOVE_FROM_CART,
    Touchpoint.CHECKOUT_START,
    Touchpoint.COUPON_APPLIED,
    Touchpoint.PAYMENT_FAILED,
    Touchpoint.PURCHASE,
}

#: Consent can be given or withdrawn at any point of a journey: these kinds take any stage.
CONSENT_KINDS = frozenset({Touchpoint.CONSENT_GRANTED, Touchpoint.CONSENT_REVOKED, Touchpoint.UNSUBSCRIBE})
#: Kinds that take any stage: consent, and an erasure request (the right to be forgotten has no stage).
ANY_STAGE_KINDS = CONSENT_KINDS | {Touchpoint.ERASURE_REQUEST}

#: The stage every touchpoint kind belongs to (for the consent kinds, the usual one: they take any).
STAGE_OF: dict[Touchpoint, Stage] = {
    tp: Stage.PRE_PURCHASE if tp in _PRE else Stage.PURCHASE if tp in _PURCHASE else Stage.POST_PURCHASE
    for tp in Touchpoint
}


class ConsentChannel(StrEnum):
    """The channels consent is given for: the ones where marketing needs a customer's say-so."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    PHONE = "phone"
    ADS = "ads"  # ads audiences (retargeting, lookalikes)


class OrderPayload(BaseModel):
    """A purchase (or a refund / return of one)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["order"] = "order"
    amount: Amount = Field(description="Order total, in `currency`, after discounts.")
    currency: Annotated[str, AfterValidator(check_currency)] = Field(
        min_length=3,
        max_length=3,
        pattern="^[A-Z]{3}$",
        description="ISO 4217 code; converted into the state's currency (`JOURNEY_CURRENCY`) by the configured rates.",
    )
    discount: Amount = Field(default=0, description="Discount granted on the order.")
    coupon: str | None = Field(default=None, max_length=64)
    order_id: str | None = Field(default=None, max_length=128)


class ScorePayload(BaseModel):
    """A survey answer or a review rating."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["score"] = "score"
    csat: StrictWhole | None = Field(default=None, ge=1, le=5)
    nps: StrictWhole | None = Field(default=None, ge=0, le=10)
    ces: StrictWhole | None = Field(default=None, ge=1, le=7)
    rating: StrictWhole | None = Field(default=None, ge=1, le=5, description="Review stars.")
    sentiment: Sentiment | None = None


class SupportPayload(BaseModel):
    """A support contact: ticket, complaint, pre-sales chat."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["support"] = "support"
    topic: str | None = Field(default=None, max_length=128)
    sentiment: Sentiment | None = Field(default=None, description="-1 very negative … 1 very positive.")
    wait_seconds: WaitSeconds | None = Field(default=None, description="How long the customer waited (at most a year).")


class ConsentPayload(BaseModel):
    """Consent granted or revoked on one channel (an unsubscribe without one: e-mail)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["consent"] = "consent"
    channel: ConsentChannel = Field(description="email, sms, push, phone or ads (audiences); any other is refused.")
    purpose: Literal["marketing"] = Field(
        default="marketing", description="Only marketing needs consent: service messages are always allowed."
    )
    source: str | None = Field(
        default=None,
        max_length=64,
        pattern=ID_PATTERN,
        description="Where it was given or withdrawn: preference_centre, signup_form, list_unsubscribe, …",
    )


class ErasurePayload(BaseModel):
    """A request to forget the customer: who asked, for the audit message (and nothing else about them)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["erasure"] = "erasure"
    requested_by: str = Field(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="Who asked (a system, a ticket, an operator): copied into the audit message. No control characters.",
    )


Payload = Annotated[
    OrderPayload | ScorePayload | SupportPayload | ConsentPayload | ErasurePayload, Field(discriminator="kind")
]

#: Kinds whose payload is required, and the payload type each takes.
PAYLOAD_REQUIRED: dict[Touchpoint, type[BaseModel]] = {
    Touchpoint.PURCHASE: OrderPayload,
    Touchpoint.SURVEY_RESPONSE: ScorePayload,
    Touchpoint.REVIEW_WRITTEN: ScorePayload,
    Touchpoint.CONSENT_GRANTED: ConsentPayload,
    Touchpoint.CONSENT_REVOKED: ConsentPayload,
    Touchpoint.ERASURE_REQUEST: ErasurePayload,
}
#: Kinds that may carry a payload, and which one.
PAYLOAD_ALLOWED: dict[Touchpoint, type[BaseModel]] = {
    **PAYLOAD_REQUIRED,
    Touchpoint.RETURN: OrderPayload,
    Touchpoint.REFUND: OrderPayload,
    Touchpoint.SUBSCRIPTION_RENEWED: OrderPayload,
    Touchpoint.SUBSCRIPTION_UPGRADED: OrderPayload,
    Touchpoint.SUPPORT_TICKET: SupportPayload,
    Touchpoint.COMPLAINT: SupportPayload,
    Touchpoint.PRESALES_CHAT: SupportPayload,
    Touchpoint.CHANGE_REQUEST: SupportPayload,
    Touchpoint.UNSUBSCRIBE: ConsentPayload,  # without one: e-mail marketing
}


class TouchpointEvent(BaseModel):
    """One touchpoint, as emitted by the business onto `journey.touchpoints` (key = customer id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="Unique per event: a re-send is dropped, the same id with other content dead-lettered. "
        "No control characters.",
    )
    customer_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="The message key too; no control characters (it is also part of Redis keys and outbox entries).",
    )
    occurred_at: AwareDatetime = Field(
        description="Event time, with a timezone offset; naive times are refused. From 1970-01-01 to before 3000-01-01 (UTC)."
    )
    stage: Stage
    touchpoint: Touchpoint
    channel: str = Field(min_length=1, max_length=64, description="web, app, email, store, phone, social, …")
    country: str | None = Field(default=None, min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")
    language: str | None = Field(default=None, min_length=2, max_length=16, description="BCP 47 tag.")
    segment: str | None = Field(default=None, max_length=64, description="Business segment, e.g. e-commerce.")
    timezone: ZoneName | None = Field(
        default=None,
        description="The customer's time zone, an IANA name (Europe/Lisbon); quiet hours are local to it. "
        "Without it, the country's main zone, else JOURNEY_DEFAULT_TIMEZONE.",
    )
    payload: Payload | None = None

    @model_validator(mode="after")
    def _stage_and_payload_agree_with_kind(self) -> TouchpointEvent:
        expected = STAGE_OF[self.touchpoint]
        if self.stage is not expected and self.touchpoint not in ANY_STAGE_KINDS:
            raise ValueError(
                f"stage {self.stage.value!r} contradicts touchpoint {self.touchpoint.value!r}, "
                f"which belongs to {expected.value!r}"
            )
        required = PAYLOAD_REQUIRED.get(self.touchpoint)
        if required is not None and not isinstance(self.payload, required):
            raise ValueError(
                f"touchpoint {self.touchpoint.value!r} needs a payload of kind "
                f"{required.model_fields['kind'].default!r}"
            )
        allowed = PAYLOAD_ALLOWED.get(self.touchpoint)
        if self.payload is not None and (allowed is None or not isinstance(self.payload, allowed)):
            raise ValueError(
                f"touchpoint {self.touchpoint.value!r} does not take a payload of kind {self.payload.kind!r}"
            )
        # Filled here, where the event is validated anyway: the cached_property's first call (its lock
        # and descriptor) cost the worker about as much again per event. It stays for unvalidated copies.
        ts = self.__dict__["occurred_ts"] = self.occurred_at.timestamp()
        if not _FROM_TS <= ts < _BEFORE_TS:
            raise ValueError(
                f"occurred_at {self.occurred_at.isoformat()} is outside the times the format takes "
                f"({OCCURRED_FROM.date()} to before {OCCURRED_BEFORE.date()}, UTC)"
            )
        return self

    @cached_property
    def occurred_ts(self) -> float:
        """Event time as epoch seconds (what the core computes with); computed once."""
        return self.occurred_at.timestamp()
