"""The playbook, loaded and checked against the rules, and the one decision it makes: send or suppress.

Suppression is as much the product as sending: an action inside its cooldown, a promotion
to a customer who is angry right now, a marketing message past the weekly cap, anything
after a lapsed customer's last win-back — each is suppressed with its reason, counted in
the state and shown by `journey explain`, never silently dropped.

Quiet hours defer rather than drop: a marketing or promotion action decided inside the customer's
local quiet window waits in their state and is emitted when the window ends (`release_next`), with
the id it was decided with. Cooldown and the frequency cap are judged once, when the action is
decided, and the waiting action holds its place in both (so a night's decisions cannot add up past
the cap, nor one action be decided twice); what can change overnight is judged again at release: the
customer must still be of the type that triggered it (else it is suppressed as `superseded`), and
the lapsed, mood and consent rules must still let it go. An action suppressed at release gives its places back.

Consent: a marketing or promotion action on a channel the playbook's `consent` policy names needs the
customer's consent there (`opt_in`: granted; `opt_out`: not revoked), else it is suppressed as `no_consent`.
A suppressed action is never sent later because consent came afterwards: it was decided, and suppressed.

Holdouts: an action with `holdout: share` is held out for the customers whose `holdout_draw` is below the
share. A held-out action is decided, counted and kept for cooldowns and the cap exactly as a sent one (so the
held-out group lives through the same playbook as the others, and only this action differs), but it goes to
`held_out` (the holdouts topic) instead of `sent`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas import HeldOutAction, NurtureAction, TypeChange
from streams.core import ids
from streams.core.instants import instant, iso
from streams.core.playbook.quiet import QuietWindow
from streams.core.playbook.spec import Action, ConsentPolicy, Kind, PlaybookFile
from streams.core.state import CustomerState
from streams.core.trusted import trusted
from streams.core.zones import customer_zone_name, zone
from streams.yamlfile import validated_yaml

DEFAULT_PLAYBOOK_FILE = Path(__file__).with_name("default.yaml")
DAY = 86_400.0
WEEK = 7 * DAY
#: Suppressions remembered per customer for `journey explain` (the count is kept in full).
SUPPRESSED_KEPT = 3
_nurture_action, _held_out_action = trusted(NurtureAction), trusted(HeldOutAction)
#: The salt of holdout draws when none is set (JOURNEY_HOLDOUT_SALT): set one per deployment so the groups
#: cannot be told from customer ids alone.
DEFAULT_HOLDOUT_SALT = "journey-holdout-v1"
#: The outcome (beside sent and suppressed) of an action its customer is held out of, in counts and metrics.
HELD_OUT = "held_out"


def holdout_draw(salt: str, customer_id: str, action: str) -> float:
    """The customer's stable draw in [0, 1) for this action: BLAKE2b (8-byte digest) keyed by the salt over
    `customer_id NUL action`, its 8 bytes read big-endian, over 2**64. Held out when below the action's share."""
    digest = hashlib.blake2b(f"{customer_id}\x00{action}".encode(), digest_size=8, key=salt.encode()).digest()
    return int.from_bytes(digest, "big") / 2**64


class PlaybookError(ValueError):
    """A playbook file that cannot be used; the message names the line and what is wrong."""


@dataclass(frozen=True, slots=True)
class Suppressed:
    action: str
    reason: str

    @property
    def kind(self) -> str:
        """The reason as one fixed word (`SUPPRESSION_KINDS`), for counting: the reason itself carries figures."""
        return suppression_kind(self.reason)


#: What `suppression_kind` names a reason, by how `Playbook._reason_to_suppress` words it.
SUPPRESSION_KINDS = {
    "cooldown:": "cooldown",
    "lapsed:": "lapsed",
    "no promotion while": "mood",
    "frequency cap:": "frequency_cap",
    "superseded:": "superseded",
    "no consent:": "no_consent",
}


@dataclass(frozen=True, slots=True)
class Deferred:
    """An action decided inside the quiet hours: it waits in the customer's state until `until`."""

    action: str
    until: float


def suppression_kind(reason: str) -> str:
    """`cooldown`, `lapsed`, `mood`, `frequency_cap`, `superseded` or `no_consent` (`other` for a reason worded
    elsewhere)."""
    for start, kind in SUPPRESSION_KINDS.items():
        if reason.startswith(start):
            return kind
    return "other"


_COOLDOWN_SENT = re.compile(r"^cooldown: sent [0-9.]+ days ago, cooldown ([0-9.e+]+) days$")
_COOLDOWN_WAITING = re.compile(r"^(cooldown: already waiting for the quiet hours to end), until .*$")


def suppression_rule(reason: str) -> str:
    """The rule a suppression applied, with the rule's own values (a cooldown's days, the cap), without what
    varies from customer to customer (how long ago, until when): what reports group suppressions by."""
    match = _COOLDOWN_SENT.match(reason)
    if match:
        return f"cooldown: sent again within the cooldown ({match.group(1)} days)"
    match = _COOLDOWN_WAITING.match(reason)
    if match:
        return match.group(1)
    return reason


class Playbook:
    """A validated playbook: `decide` turns the types a customer just entered into actions."""

    def __init__(
        self,
        spec: PlaybookFile,
        source: str = "playbook",
        default_timezone: str = "UTC",
        holdout_salt: str = DEFAULT_HOLDOUT_SALT,
    ) -> None:
        self.spec, self.source = spec, source
        self.holdout_salt = holdout_salt
        self.consent = dict(spec.consent)
        quiet = spec.quiet_hours
        self.quiet = None if quiet is None else QuietWindow.of(quiet.from_, quiet.to)
        #: The zone of customers whose events name none and whose country has none (JOURNEY_DEFAULT_TIMEZONE).
        self.default_timezone = default_timezone
        self.actions: dict[str, Action] = dict(spec.actions)
        self.triggers = {t: tuple(names) for t, names in spec.triggers.items()}
        self.cap = spec.caps.marketing_per_week
        self.mood = frozenset(spec.suppress.promotions_while)
        self.last_win_back = spec.suppress.last_win_back

    def decide(
        self,
        state: CustomerState,
        change: TypeChange,
        at: float,
        sent: list[NurtureAction],
        suppressed: list[Suppressed],
        deferred: list[Deferred] | None = None,
        held_out: list[NurtureAction] | None = None,
    ) -> None:
        """Actions for one change that entered a type (`change.to`); changes `state`'s bookkeeping in place.

        An action that falls into the quiet hours goes to `deferred` (and waits in `state.deferred`), not `sent`;
        one the customer is held out of goes to `held_out`.
        """
        for name in self.triggers.get(change.to or "", ()):
            action = self.actions[name]
            reason = self._waiting(state, name) or self._reason_to_suppress(state, name, action, at)
            if reason is not None:
                self._suppress(state, name, reason, at, suppressed)
                continue
            self._forget_expired(state, at)
            state.actions_sent[name] = at
            if action.kind is not Kind.SERVICE:
                state.marketing_log.append(at)
                del state.marketing_log[: -max(self.cap, 1)]
            if name == self.last_win_back and state.lifecycle == "lapsed":
                state.final_win_back_at = at
            until = self._quiet_until(state, action, at)
            if until is not None:
                self._defer(state, (until, at, name, change.change_id, change.reason.rule))
                if deferred is not None:
                    deferred.append(Deferred(name, until))
                continue
            self._emit(state, name, action, change.change_id, change.reason.rule, at, sent, held_out)

    def held_out(self, customer_id: str, name: str) -> bool:
        """Whether this customer is in the action's holdout group (the same answer every time, live and replay)."""
        action = self.actions.get(name)
        share = 0.0 if action is None else action.holdout
        return share > 0.0 and holdout_draw(self.holdout_salt, customer_id, name) < share

    def _emit(
        self,
        state: CustomerState,
        name: str,
        action: Action,
        change_id: str,
        rule: str,
        at: float,
        sent: list[NurtureAction],
        held_out: list[NurtureAction] | None,
        **extra: str,
    ) -> None:
        if self.held_out(state.customer_id, name):
            if held_out is not None:
                held_out.append(self._action(state, name, action, change_id, rule, at, _held_out_action, **extra))
            return
        sent.append(self._action(state, name, action, change_id, rule, at, _nurture_action, **extra))

    def _action(
        self,
        state: CustomerState,
        name: str,
        action: Action,
        change_id: str,
        rule: str,
        at: float,
        build: Callable[..., NurtureAction] = _nurture_action,
        **extra: str,
    ) -> NurtureAction:
        """The action as published; `rule` is the triggering change's (`lifecycle.loyal`, `trait.angry`)."""
        return build(  # built from checked values: see engine._change
            action_id=ids.action_id(change_id, name),
            customer_id=state.customer_id,
            action=name,
            channel=action.channel,
            priority=action.priority,
            params={**action.params, "type": _type_of(rule), "rule": rule, **extra},
            triggered_by=change_id,
            at=instant(at),
        )

    @staticmethod
    def _suppress(state: CustomerState, name: str, reason: str, at: float, suppressed: list[Suppressed]) -> None:
        state.actions_suppressed += 1
        state.suppressed_log.append([at, name, reason])
        del state.suppressed_log[:-SUPPRESSED_KEPT]
        suppressed.append(Suppressed(name, reason))

    # quiet hours

    def zone_name(self, state: CustomerState) -> str:
        """The zone the customer's quiet hours are local to (`streams/core/zones.py`)."""
        return customer_zone_name(state.timezone, state.country, self.default_timezone)

    def _quiet_until(self, state: CustomerState, action: Action, at: float) -> float | None:
        """When the quiet hours that `at` falls in end for this customer (None: not quiet, or a service action)."""
        if self.quiet is None or action.kind is Kind.SERVICE:
            return None
        return self.quiet.release_at(at, zone(self.zone_name(state)))

    @staticmethod
    def _waiting(state: CustomerState, name: str) -> str | None:
        """The reason to suppress a decision of an action that already waits for the quiet hours to end."""
        for until, _, waiting, *_ in state.deferred:
            if waiting == name:
                return f"cooldown: already waiting for the quiet hours to end, until {iso(until)}"
        return None

    @staticmethod
    def _defer(state: CustomerState, entry: tuple[float, float, str, str, str]) -> None:
        """Keep the entry in release order (after those released at the same instant: decision order)."""
        waiting = state.deferred
        at = len(waiting)
        while at and waiting[at - 1][0] > entry[0]:
            at -= 1
        waiting.insert(at, entry)

    @staticmethod
    def next_release(state: CustomerState) -> float | None:
        """When the earliest waiting action is due (None: none waits)."""
        return state.deferred[0][0] if state.deferred else None

    def release_next(
        self,
        state: CustomerState,
        sent: list[NurtureAction],
        suppressed: list[Suppressed],
        held_out: list[NurtureAction] | None = None,
    ) -> None:
        """Emit the earliest waiting action at its release time, or suppress it if it no longer applies.

        Its id is the one it was decided with (from the change that triggered it and its name), so a
        consumer that acts once per id acts once, whichever worker or replay releases it.
        """
        until, decided, name, change_id, rule = state.deferred.pop(0)
        action = self.actions.get(name)
        reason = self._superseded(state, rule, action)
        if reason is None and action is not None:
            reason = self._standing_reason(state, name, action, decided)
        if reason is not None or action is None:
            # It never reached the customer: the places it held in the cooldown and the cap are free again.
            if state.actions_sent.get(name) == decided:
                del state.actions_sent[name]
            if decided in state.marketing_log:
                state.marketing_log.remove(decided)
            if state.final_win_back_at == decided:
                state.final_win_back_at = None
            self._suppress(state, name, reason or "superseded", until, suppressed)
            return
        self._emit(state, name, action, change_id, rule, until, sent, held_out, deferred_from=iso(decided))

    @staticmethod
    def _superseded(state: CustomerState, rule: str, action: Action | None) -> str | None:
        """Why a waiting action no longer applies: the customer left the type that triggered it (or the
        playbook no longer has the action)."""
        if action is None:
            return "superseded: the playbook in force no longer has this action"
        kind, _, type_ = rule.partition(".")
        if kind == "lifecycle" and state.lifecycle != type_:
            return f"superseded: the customer is no longer {type_} (now {state.lifecycle})"
        if kind == "trait" and type_ not in state.traits:
            return f"superseded: the customer is no longer {type_}"
        return None

    def _forget_expired(self, state: CustomerState, at: float) -> None:
        """Drop what can no longer suppress anything (past its cooldown, out of the cap's week): it only costs bytes."""
        for name, last in list(state.actions_sent.items()):
            action = self.actions.get(name)
            if action is None or at - last >= action.cooldown_days * DAY:
                del state.actions_sent[name]
        state.marketing_log[:] = [t for t in state.marketing_log if at - t < WEEK]

    def _reason_to_suppress(self, state: CustomerState, name: str, action: Action, at: float) -> str | None:
        last = state.actions_sent.get(name)
        if last is not None and at - last < action.cooldown_days * DAY:
            return f"cooldown: sent {round((at - last) / DAY, 1)} days ago, cooldown {action.cooldown_days:g} days"
        if action.kind is Kind.SERVICE:
            return None
        standing = self._standing_reason(state, name, action)
        if standing is not None:
            return standing
        recent = sum(1 for t in state.marketing_log if at - t < WEEK)
        if recent >= self.cap:
            return f"frequency cap: {recent} marketing messages in the last 7 days (cap {self.cap})"
        return None

    def _standing_reason(
        self, state: CustomerState, name: str, action: Action, decided: float | None = None
    ) -> str | None:
        """The suppressions that depend on what the customer is now (judged again when a waiting action is
        released, `decided` then being when it was decided): a lapsed customer's, a promotion's mood, and
        the customer's consent on the action's channel. Never for a service action."""
        if action.kind is Kind.SERVICE:
            return None
        consent = self.no_consent(state, action.channel)
        if consent is not None:
            return consent
        final = state.final_win_back_at
        if final is not None and decided is not None and final == decided and name == self.last_win_back:
            final = None  # the last win-back marked as sent is this one, waiting for the quiet hours to end
        if state.lifecycle == "lapsed" and (final is not None or name != self.last_win_back):
            if final is not None:
                return "lapsed: the last win-back was sent; no more marketing until they come back"
            return "lapsed: only the last win-back may reach them; no other marketing until they come back"
        if action.kind is Kind.PROMOTION:
            moods = sorted(self.mood & state.traits.keys())
            if moods:
                return f"no promotion while the customer is {' and '.join(moods)}"
        return None

    def consent_view(
        self, state: CustomerState
    ) -> list[tuple[str, str | None, tuple[bool, float, str | None] | None, bool]]:
        """Per consent channel the policy names or the customer spoke for, sorted: (channel, policy or None,
        what the customer said or None, whether marketing may use it now), for explain and the profile."""
        channels = sorted(set(self.consent) | set(state.consent))
        return [
            (
                channel,
                None if channel not in self.consent else self.consent[channel].value,
                state.consent.get(channel),
                self.no_consent(state, channel) is None,
            )
            for channel in channels
        ]

    def no_consent(self, state: CustomerState, channel: str) -> str | None:
        """Why marketing may not use this channel for this customer (None: it may, or the channel needs no consent)."""
        policy = self.consent.get(channel)
        if policy is None:
            return None
        said = state.consent.get(channel)
        if said is None:
            if policy is ConsentPolicy.OPT_IN:
                return f"no consent: {channel} marketing is opt-in and the customer has not granted it"
            return None
        if not said[0]:
            return f"no consent: the customer revoked {channel} marketing"
        return None


def _type_of(rule: str) -> str:
    """The type a change entered, from its rule (`lifecycle.loyal` -> `loyal`, `trait.angry` -> `angry`)."""
    return rule.partition(".")[2]


def load_playbook(
    path: str | Path | None = None,
    types: set[str] | None = None,
    rules_source: str = "the rules",
    default_timezone: str = "UTC",
    holdout_salt: str = DEFAULT_HOLDOUT_SALT,
) -> Playbook:
    """The playbook at `path` (the shipped default when None), validated; `types`: the rules' type names;
    `default_timezone`: see `Playbook.default_timezone`; `holdout_salt`: JOURNEY_HOLDOUT_SALT."""
    path = Path(path) if path is not None else DEFAULT_PLAYBOOK_FILE
    spec = validated_yaml(
        path,
        PlaybookFile,
        PlaybookError,
        " (version, caps, suppress, quiet_hours, consent, actions, triggers)",
        context={"types": types, "rules": rules_source} if types is not None else None,
    )
    return Playbook(spec, path.name, default_timezone, holdout_salt)
