"""Short codes for the names Redis holds many times per customer: types, actions, rules' signals, channels.

A customer's state and change history repeat the same few dozen names (`loyal`, `win_back_offer`,
`negative_contacts_14d`, ...) in every record; stored as one- or two-character codes they take a
fraction of the room (`streams/store/history.py`, the coded fields of `streams/core/state.py`). Only
the stored form is coded: in memory, in messages and in what `journey explain` and the profile route
show, the names stay the names (the codes are decoded on read).

Each table lists names in a fixed order and a name's code is its place in the list, so the tables are
append-only: a name is never removed or moved (a name no longer used stays, holding its code), and new
names go at the end. `tests/unit/core/test_codes.py` pins a few codes so that a reordering fails.

Names the tables do not hold (a trait or an action of a custom rules file or playbook, a new channel)
are stored as they are, so any name still works. A code starts with an upper-case letter or a digit:
type names (`[a-z][a-z0-9_]*`, `streams/core/rules/spec.py`) and signal names never do, so they cannot be
mistaken for a code. Action and channel names are free text, so a name that is not in the table but
reads as a code, or starts with `!`, is stored behind a `!` (`encode` / `decode` round-trip every string).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: The code alphabet: a code is one of these, or two of them (36 + 36 * 36 names per table).
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: Marks a stored name that is not a code although it reads like one.
ESCAPE = "!"


def _code(i: int) -> str:
    if i < len(_ALPHABET):
        return _ALPHABET[i]
    first, second = divmod(i - len(_ALPHABET), len(_ALPHABET))
    return _ALPHABET[first] + _ALPHABET[second]


class Codes:
    """One table: name <-> code, every other string passed through (escaped when it could be read as a code)."""

    __slots__ = ("by_code", "by_name")

    def __init__(self, names: Sequence[str]) -> None:
        assert len(set(names)) == len(names) and len(names) <= len(_ALPHABET) * (len(_ALPHABET) + 1)
        self.by_name: dict[str, str] = {name: _code(i) for i, name in enumerate(names)}
        self.by_code: dict[str, str] = {code: name for name, code in self.by_name.items()}

    def encode(self, name: str) -> str:
        code = self.by_name.get(name)
        if code is not None:
            return code
        if name in self.by_code or name.startswith(ESCAPE):
            return ESCAPE + name
        return name

    def decode(self, stored: str) -> str:
        """The name a stored string stands for: a code's name, an escaped name, or the string itself (which is
        also what records written before the codes hold)."""
        name = self.by_code.get(stored)
        if name is not None:
            return name
        return stored[1:] if stored.startswith(ESCAPE) else stored


#: The lifecycle types (`streams/core/rules/spec.py` LIFECYCLE_TYPES), all of them.
LIFECYCLE = Codes(("prospect", "free_user", "new", "loyal", "advocate", "at_risk", "lapsed"))
#: The traits of the shipped rules (`streams/core/rules/default.yaml`).
TRAITS = Codes(
    (
        "impulsive",
        "discount_seeker",
        "informed_buyer",
        "curious_browser",
        "inquisitive",
        "confused",
        "uncertain",
        "angry",
        "negative_experience",
        "demanding",
        "international",
        "unpredictable",
        "efficient",
        "traditionalist",
        "change_requester",
    )
)
#: The actions of the shipped playbook (`streams/core/playbook/default.yaml`).
ACTIONS = Codes(
    (
        "lead_nurture_sequence",
        "upgrade_offer",
        "welcome_onboarding",
        "loyalty_programme_invite",
        "referral_programme",
        "win_back_offer",
        "last_win_back",
        "urgency_promotion",
        "lifecycle_coupon",
        "expert_content",
        "strong_call_to_action",
        "knowledge_base_routing",
        "tutorial_links",
        "retargeting_audience",
        "support_escalation_apology",
        "personal_outreach_offer",
        "priority_queue",
        "multilingual_routing",
        "ces_survey",
        "concise_options_summary",
        "change_rationale_briefing",
        "change_cost_notice",
    )
)
#: Channels events commonly name.
CHANNELS = Codes(("web", "app", "store", "email", "phone", "chat", "social", "sms", "push", "ads", "partner"))
#: The names rules' evidence is keyed by: the signals (`streams/core/rules/signals.py`) and `since`.
EVIDENCE = Codes(
    (
        "since",
        "events",
        "purchases",
        "total_spend",
        "average_spend",
        "coupon_share",
        "purchase_rhythm_days",
        "hours_first_view_to_purchase",
        "pre_buy_events",
        "pre_buy_reviews",
        "pre_buy_cart_churn",
        "channels_used",
        "free_plan",
        "returns",
        "international",
        "days_since_last_purchase",
        "days_since_first_purchase",
        "days_since_last_seen",
        "days_since_complaint",
        "days_since_negative_review",
        "days_since_positive_review",
        "days_since_change_request",
        "support_contacts",
        "howto_contacts",
        "mean_support_sentiment",
        "support_contacts_7d",
        "support_contacts_30d",
        "negative_contacts_14d",
        "long_waits_14d",
        "follow_ups_7d",
        "latest_csat",
        "latest_nps",
        "latest_ces",
        "latest_rating",
        "surveys",
        "neutral_survey_share",
        "negative_reviews",
        "count_social_engagement",
        "count_ad_click",
        "count_referral_visit",
        "count_review_read",
        "count_page_view",
        "count_content_view",
        "count_search",
        "count_newsletter_signup",
        "count_demo_request",
        "count_form_submit",
        "count_free_signup",
        "count_trial_start",
        "count_presales_chat",
        "count_catalog_view",
        "count_product_view",
        "count_add_to_cart",
        "count_remove_from_cart",
        "count_checkout_start",
        "count_coupon_applied",
        "count_payment_failed",
        "count_purchase",
        "count_survey_response",
        "count_review_written",
        "count_support_ticket",
        "count_complaint",
        "count_return",
        "count_refund",
        "count_change_request",
        "count_email_open",
        "count_email_click",
        "count_referral_made",
        "count_subscription_renewed",
        "count_subscription_upgraded",
        "count_subscription_cancelled",
        "count_product_usage",
        "count_consent_granted",
        "count_consent_revoked",
        "count_unsubscribe",
        "count_erasure_request",
        "p_alive",
        "churn_risk",
        "expected_purchases",
        "churn_model",
        "churn_horizon_days",
    )
)


def types_of(dimension: str) -> Codes:
    """The table of a change's `from` / `to`: lifecycle types or traits."""
    return LIFECYCLE if dimension == "lifecycle" else TRAITS


#: How suppression reasons are worded (`streams/core/playbook/playbook.py`), each `{}` a part that varies. A
#: stored reason that fits one is `[its place here, the parts]`; any other reason is stored as it is. Append-only,
#: as the tables are; a template's fixed text has no braces.
REASONS = (
    "cooldown: sent {} days ago, cooldown {} days",
    "frequency cap: {} marketing messages in the last 7 days (cap {})",
    "lapsed: the last win-back was sent; no more marketing until they come back",
    "lapsed: only the last win-back may reach them; no other marketing until they come back",
    "no promotion while the customer is {}",
    "cooldown: already waiting for the quiet hours to end, until {}",
    "superseded: the playbook in force no longer has this action",
    "superseded: the customer is no longer {} (now {})",
    "superseded: the customer is no longer {}",
    "superseded",
)


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("(.*?)".join(re.escape(part) for part in template.split("{}")), re.DOTALL)


_REASON_PATTERNS = tuple(_pattern(t) for t in REASONS)


def encode_reason(reason: str) -> str | list[Any]:
    """A suppression reason as stored: `[template, parts...]`, or the text when no template fits. The first
    template that matches the whole text wins; putting the parts back into it gives the text again, exactly."""
    for i, pattern in enumerate(_REASON_PATTERNS):
        match = pattern.fullmatch(reason)
        if match is not None:
            return [i, *match.groups()]
    return reason


def decode_reason(stored: Any) -> Any:
    """The text of a stored reason (records written before the templates hold the text itself)."""
    if isinstance(stored, list) and stored and type(stored[0]) is int and 0 <= stored[0] < len(REASONS):
        template = REASONS[stored[0]]
        parts = [str(p) for p in stored[1:]]
        if len(parts) == template.count("{}"):
            return template.format(*parts)
    return stored
