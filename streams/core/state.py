"""What the processor remembers per customer: one compact record in Redis.

Times are epoch seconds (floats) to keep the record small and the arithmetic cheap.
Only facts that cannot be derived are stored: the average spend and the purchase
rhythm are computed from the totals and the first / last purchase times, and every
rule reads these facts through the signals of `streams/core/rules/signals.py`.
Fields at their defaults are left out of the Redis record, and fields are stored under
short keys (see the aliases). The touchpoint kinds and stages that key `counts` and `last_by_stage`
are stored as one-character codes from fixed tables (`TOUCHPOINT_CODES`, `STAGE_CODES`), mapped by
pydantic's compiled validator and serialiser so the worker's hot path stays in Rust; records written
before the codes, with the names themselves, still decode. In memory the keys stay the names. The names
the rules, the playbook and events bring (lifecycle type, traits, actions, channels, suppression reasons)
are stored as codes too (`streams/core/codes.py`), through small Python hooks on those fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field, PlainSerializer, TypeAdapter
from typing_extensions import TypedDict

from streams.core import codes, ids

#: The code each touchpoint kind is stored under in a state's counts: one character, fixed here rather than
#: derived from the enum's order so that adding, removing or reordering kinds never changes what a stored
#: code means. A code is never reused, even for a kind that is gone (tests/unit/core/test_state.py checks
#: that every kind has one and that they are distinct); new kinds take new codes.
TOUCHPOINT_CODES: dict[str, str] = {
    "social_engagement": "a",
    "ad_click": "b",
    "referral_visit": "c",
    "review_read": "d",
    "page_view": "e",
    "content_view": "f",
    "search": "g",
    "newsletter_signup": "h",
    "demo_request": "i",
    "form_submit": "j",
    "free_signup": "k",
    "trial_start": "l",
    "presales_chat": "m",
    "catalog_view": "n",
    "product_view": "o",
    "add_to_cart": "p",
    "remove_from_cart": "q",
    "checkout_start": "r",
    "coupon_applied": "s",
    "payment_failed": "t",
    "purchase": "u",
    "survey_response": "v",
    "review_written": "w",
    "support_ticket": "x",
    "complaint": "y",
    "return": "z",
    "refund": "A",
    "change_request": "B",
    "email_open": "C",
    "email_click": "D",
    "referral_made": "E",
    "subscription_renewed": "F",
    "subscription_upgraded": "G",
    "subscription_cancelled": "H",
    "product_usage": "I",
    "consent_granted": "W",
    "consent_revoked": "X",
    "unsubscribe": "Y",
    "erasure_request": "Z",  # never counted (an erasure is not folded), but every kind has its code
}
#: The same for the stages (the keys of `last_by_stage`), under the same rules.
STAGE_CODES: dict[str, str] = {"pre_purchase": "b", "purchase": "p", "post_purchase": "a"}


def _keys_as_codes(name: str, codes: dict[str, str], value: type) -> Any:
    """A dict type whose keys pydantic stores as their codes and reads as codes or names (records written
    before the codes hold the names), all in its compiled validator and serialiser: a TypedDict with one
    aliased field per key. A key without a code is refused, as an unknown field is."""
    assert len(set(codes.values())) == len(codes) and all(len(n) > len(c) for n, c in codes.items())
    fields = {key: Annotated[value, Field(alias=code)] for key, code in codes.items()}
    coded = TypedDict(name, fields, total=False)  # type: ignore[misc]
    coded.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
        extra="forbid", validate_by_alias=True, validate_by_name=True, serialize_by_alias=True
    )
    return coded


def _decoded_keys(table: codes.Codes) -> Any:
    decode = table.decode
    return BeforeValidator(lambda v: {decode(k): x for k, x in v.items()} if isinstance(v, dict) else v)


def _encoded_keys(table: codes.Codes) -> Any:
    encode = table.encode
    return PlainSerializer(lambda v: {encode(k): x for k, x in v.items()}, when_used="json")


def _decoded_name(table: codes.Codes) -> Any:
    decode = table.decode
    return BeforeValidator(lambda v: decode(v) if isinstance(v, str) else v)


def _encoded_name(table: codes.Codes) -> Any:
    encode = table.encode
    return PlainSerializer(lambda v: None if v is None else encode(v), when_used="json")


def _decoded_names(table: codes.Codes) -> Any:
    decode = table.decode
    return BeforeValidator(lambda v: [decode(x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v)


def _encoded_names(table: codes.Codes) -> Any:
    encode = table.encode
    return PlainSerializer(lambda v: [encode(x) for x in v], when_used="json")


def _decoded_suppressions(value: Any) -> Any:
    """`[time, action, reason]` entries as stored (coded, or names and text as earlier versions wrote them)."""
    if not isinstance(value, list):
        return value
    out = []
    for entry in value:
        if isinstance(entry, list) and len(entry) == 3:
            at, action, reason = entry
            entry = [
                at,
                codes.ACTIONS.decode(action) if isinstance(action, str) else action,
                codes.decode_reason(reason),
            ]
        out.append(entry)
    return out


def _encoded_suppressions(value: list[list]) -> list[list]:
    return [
        [entry[0], codes.ACTIONS.encode(entry[1]), codes.encode_reason(entry[2])]
        if len(entry) == 3 and isinstance(entry[1], str) and isinstance(entry[2], str)
        else entry
        for entry in value
    ]


if TYPE_CHECKING:  # to the code they are plain dicts (keyed by the enum values) and plain names
    _Counts = dict[str, int]
    _ByStage = dict[str, float]
    _Lifecycle = str | None
    _Traits = dict[str, float]
    _Actions = dict[str, float]
    _Channels = list[str]
    _Suppressions = list[list]
else:
    _Counts = _keys_as_codes("Counts", TOUCHPOINT_CODES, int)
    _ByStage = _keys_as_codes("ByStage", STAGE_CODES, float)
    # Names from the rules, the playbook and the events, as codes (`streams/core/codes.py`): in Python, as
    # these tables pass any other name through (custom rules and playbooks), which a TypedDict cannot.
    _Lifecycle = Annotated[str | None, _decoded_name(codes.LIFECYCLE), _encoded_name(codes.LIFECYCLE)]
    _Traits = Annotated[dict[str, float], _decoded_keys(codes.TRAITS), _encoded_keys(codes.TRAITS)]
    _Actions = Annotated[dict[str, float], _decoded_keys(codes.ACTIONS), _encoded_keys(codes.ACTIONS)]
    _Channels = Annotated[list[str], _decoded_names(codes.CHANNELS), _encoded_names(codes.CHANNELS)]
    _Suppressions = Annotated[
        list[list], BeforeValidator(_decoded_suppressions), PlainSerializer(_encoded_suppressions, when_used="json")
    ]


def described(default_factory, description: str = ""):
    """A dataclass field with a mutable default and a description."""
    return field(default_factory=default_factory, metadata={"description": description})


@dataclass(slots=True)
class CustomerState:
    """A plain slots dataclass, not a pydantic model: the core sets its fields many times per
    event, and pydantic's `__setattr__` made that the worker's largest cost. pydantic still
    validates it on the way in from Redis and serialises it on the way out (`_ADAPTER`).
    """

    # Short keys in Redis (`id`, `fs`, `lp`, …): the field names would be a third of every record.
    __pydantic_config__ = ConfigDict(extra="forbid", serialize_by_alias=True)

    customer_id: Annotated[str, Field(alias="id")]
    first_seen: Annotated[float, Field(alias="fs")]
    last_seen: Annotated[float, Field(alias="ls")]
    last_by_stage: Annotated[_ByStage, Field(alias="st")] = described(dict)
    counts: Annotated[_Counts, Field(alias="n")] = described(dict, "Events per touchpoint kind.")
    channels: Annotated[_Channels, Field(alias="ch")] = described(list, "Distinct channels used (at most 8).")

    # purchases
    purchases: Annotated[int, Field(alias="p")] = 0
    total_spend: Annotated[float, Field(alias="sp")] = 0.0
    first_purchase_at: Annotated[float | None, Field(alias="fp")] = None
    last_purchase_at: Annotated[float | None, Field(alias="lp")] = None
    coupon_orders: Annotated[int, Field(alias="co")] = 0
    first_view_at: Annotated[float | None, Field(alias="fv")] = None
    pre_buy_events: Annotated[int, Field(alias="be")] = 0
    pre_buy_reviews: Annotated[int, Field(alias="br")] = 0
    pre_buy_cart_churn: Annotated[int, Field(alias="bc")] = 0

    # support, surveys, reviews
    support_contacts: Annotated[int, Field(alias="sc")] = 0
    support_sentiment_sum: Annotated[float, Field(alias="ss")] = 0.0
    support_sentiment_n: Annotated[int, Field(alias="sn")] = 0
    support_log: Annotated[list[list[float]], Field(alias="sl")] = described(
        list, "Latest contacts: [time, sentiment, wait seconds], oldest first."
    )
    howto_contacts: Annotated[int, Field(alias="hc")] = 0
    last_complaint_at: Annotated[float | None, Field(alias="lc")] = None
    last_change_request_at: Annotated[float | None, Field(alias="lr")] = None
    # int, as the payload's scores are: a float type turned 3 into 3.0 on the way back from Redis, so
    # evidence differed between a state kept in memory and one reloaded (batch boundaries, replays).
    scores: Annotated[dict[str, int], Field(alias="sx")] = described(dict, "Latest csat / nps / ces / rating.")
    surveys: Annotated[int, Field(alias="sv")] = 0
    neutral_surveys: Annotated[int, Field(alias="nv")] = 0
    negative_reviews: Annotated[int, Field(alias="nr")] = 0
    last_negative_review_at: Annotated[float | None, Field(alias="ln")] = None
    last_positive_review_at: Annotated[float | None, Field(alias="lo")] = None

    country: Annotated[str | None, Field(alias="cy")] = None
    language: Annotated[str | None, Field(alias="lg")] = None
    segment: Annotated[str | None, Field(alias="sg")] = None

    # classification
    lifecycle: Annotated[_Lifecycle, Field(alias="lt")] = None
    lifecycle_since: Annotated[float | None, Field(alias="lts")] = None
    traits: Annotated[_Traits, Field(alias="tr")] = described(dict, "Trait name -> time it was entered.")
    checked_at: Annotated[float | None, Field(alias="ck")] = None  # the instant the rules last judged this customer
    due_at: Annotated[float | None, Field(alias="du")] = (
        None  # when time alone could next change them (kept: computed once per change)
    )

    # actions
    actions_sent: Annotated[_Actions, Field(alias="as")] = described(dict, "Action -> last time sent (cooldowns).")
    marketing_log: Annotated[list[float], Field(alias="ml")] = described(
        list, "Times of the latest marketing sends (the weekly cap)."
    )
    final_win_back_at: Annotated[float | None, Field(alias="fw")] = None
    actions_suppressed: Annotated[int, Field(alias="su")] = 0
    suppressed_log: Annotated[_Suppressions, Field(alias="sq")] = described(
        list, "Latest suppressions: [time, action, reason]."
    )
    # Fingerprints of the latest event ids (`ids.FINGERPRINT_CHARS` each), oldest first. Stored under `rf`;
    # records of earlier versions hold longer ones under `re`, shortened on the way in (`from_json`).
    recent_events: Annotated[str, Field(validation_alias=AliasChoices("rf", "re"), serialization_alias="rf")] = ""
    # Fingerprints of those events' contents (`ids.CONTENT_CHARS` each), oldest first, aligned with the *end* of
    # `recent_events`: a state written before contents were kept has fewer (its older ids have none).
    recent_contents: Annotated[str, Field(validation_alias=AliasChoices("rd", "rc"), serialization_alias="rd")] = ""

    # quiet hours
    timezone: Annotated[str | None, Field(alias="tz")] = None  # the IANA zone the latest event named, if any
    deferred: Annotated[list[tuple[float, float, str, str, str]], Field(alias="df")] = described(
        list,
        "Actions waiting for the quiet hours to end, earliest release first: "
        "[release time, decision time, action, change id, rule of the change].",
    )

    # consent
    consent: Annotated[dict[str, tuple[bool, float, str | None]], Field(alias="cn")] = described(
        dict, "Marketing consent per channel: channel -> [granted, time, source]; a channel absent: never said."
    )

    def _position(self, fingerprint: str) -> int:
        """Where this id fingerprint is among the recent events, counted from the newest (0), or -1.

        They are fixed-width, so only aligned matches count; the newest match wins.
        """
        events, width = self.recent_events, len(fingerprint)
        at = events.rfind(fingerprint)
        while at != -1:
            if at % width == 0:
                return (len(events) - at) // width - 1
            at = events.rfind(fingerprint, 0, at + width - 1)
        return -1

    def seen(self, fingerprint: str) -> bool:
        """Whether this id fingerprint is among the recent events."""
        return self._position(fingerprint) != -1

    def recall(self, fingerprint: str, content_width: int) -> str | None:
        """The content fingerprint remembered beside this id fingerprint: None when the id is not among the
        recent events, "" when it is but without a content (remembered by a version that kept none)."""
        back = self._position(fingerprint)
        if back == -1:
            return None
        contents = self.recent_contents
        end = len(contents) - back * content_width
        return contents[end - content_width : end] if end - content_width >= 0 else ""

    def remember(self, fingerprint: str, window: int, content: str = "") -> None:
        """Add an event's id fingerprint (and its content's), keeping the latest `window` of each."""
        self.recent_events = (self.recent_events + fingerprint)[-window * len(fingerprint) :]
        if content:
            self.recent_contents = (self.recent_contents + content)[-window * len(content) :]

    def clone(self) -> CustomerState:
        """A copy whose containers can be changed without touching this one (spelled out: it runs per event).

        The entries of `support_log`, `suppressed_log`, `deferred` and `consent` are never changed once
        added (only replaced), so the copies share them.
        """
        return CustomerState(
            self.customer_id,
            self.first_seen,
            self.last_seen,
            dict(self.last_by_stage),
            dict(self.counts),
            list(self.channels),
            self.purchases,
            self.total_spend,
            self.first_purchase_at,
            self.last_purchase_at,
            self.coupon_orders,
            self.first_view_at,
            self.pre_buy_events,
            self.pre_buy_reviews,
            self.pre_buy_cart_churn,
            self.support_contacts,
            self.support_sentiment_sum,
            self.support_sentiment_n,
            list(self.support_log),
            self.howto_contacts,
            self.last_complaint_at,
            self.last_change_request_at,
            dict(self.scores),
            self.surveys,
            self.neutral_surveys,
            self.negative_reviews,
            self.last_negative_review_at,
            self.last_positive_review_at,
            self.country,
            self.language,
            self.segment,
            self.lifecycle,
            self.lifecycle_since,
            dict(self.traits),
            self.checked_at,
            self.due_at,
            dict(self.actions_sent),
            list(self.marketing_log),
            self.final_win_back_at,
            self.actions_suppressed,
            list(self.suppressed_log),
            self.recent_events,
            self.recent_contents,
            self.timezone,
            list(self.deferred),
            dict(self.consent),
        )

    def to_json(self) -> bytes:
        """The compact Redis record: fields at their defaults are left out."""
        return _ADAPTER.dump_json(self, exclude_defaults=True)

    @staticmethod
    def from_json(raw: bytes | str) -> CustomerState:
        state = _ADAPTER.validate_json(raw)
        if state.recent_events and (_LEGACY_EVENTS in raw if isinstance(raw, bytes) else '"re":"' in raw):
            state._shorten_fingerprints()
        return state

    def _shorten_fingerprints(self) -> None:
        """An earlier version's fingerprints (8 and 6 characters, under `re` and `rc`) as this one's: each is
        the start of the longer one, so every remembered event is still recognised, with its content."""
        events, contents = self.recent_events, self.recent_contents
        self.recent_events = "".join(events[i : i + _FINGERPRINT] for i in range(0, len(events), _LEGACY_FINGERPRINT))
        self.recent_contents = "".join(contents[i : i + _CONTENT] for i in range(0, len(contents), _LEGACY_CONTENT))

    def as_dict(self) -> dict:
        """Every field by its Python name (for people and tests; Redis holds the short keys)."""
        return _ADAPTER.dump_python(self, by_alias=False)

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
#: Where a record of an earlier version keeps its fingerprints, and how long theirs were.
_LEGACY_EVENTS = b'"re":"'
_LEGACY_FINGERPRINT, _LEGACY_CONTENT = 8, 6
_FINGERPRINT, _CONTENT = ids.FINGERPRINT_CHARS, ids.CONTENT_CHARS
