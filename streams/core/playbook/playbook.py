"""The playbook, loaded and checked against the rules, and the one decision it makes: send or suppress.

Suppression is as much the product as sending: an action inside its cooldown, a promotion
to a customer who is angry right now, a marketing message past the weekly cap, anything
after a lapsed customer's last win-back — each is suppressed with its reason, counted in
the state and shown by `journey explain`, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas import NurtureAction, TypeChange
from streams.core import ids
from streams.core.instants import instant
from streams.core.playbook.spec import Action, Kind, PlaybookFile
from streams.core.state import CustomerState
from streams.core.trusted import trusted
from streams.yamlfile import validated_yaml

DEFAULT_PLAYBOOK_FILE = Path(__file__).with_name("default.yaml")
DAY = 86_400.0
WEEK = 7 * DAY
#: Suppressions remembered per customer for `journey explain` (the count is kept in full).
SUPPRESSED_KEPT = 3
_nurture_action = trusted(NurtureAction)


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
}


def suppression_kind(reason: str) -> str:
    """`cooldown`, `lapsed`, `mood` or `frequency_cap` (`other` for a reason worded elsewhere)."""
    for start, kind in SUPPRESSION_KINDS.items():
        if reason.startswith(start):
            return kind
    return "other"


class Playbook:
    """A validated playbook: `decide` turns the types a customer just entered into actions."""

    def __init__(self, spec: PlaybookFile, source: str = "playbook") -> None:
        self.spec, self.source = spec, source
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
    ) -> None:
        """Actions for one change that entered a type (`change.to`); changes `state`'s bookkeeping in place."""
        for name in self.triggers.get(change.to or "", ()):
            action = self.actions[name]
            reason = self._reason_to_suppress(state, name, action, at)
            if reason is not None:
                state.actions_suppressed += 1
                state.suppressed_log.append([at, name, reason])
                del state.suppressed_log[:-SUPPRESSED_KEPT]
                suppressed.append(Suppressed(name, reason))
                continue
            self._forget_expired(state, at)
            state.actions_sent[name] = at
            if action.kind is not Kind.SERVICE:
                state.marketing_log.append(at)
                del state.marketing_log[: -max(self.cap, 1)]
            if name == self.last_win_back and state.lifecycle == "lapsed":
                state.final_win_back_at = at
            sent.append(
                _nurture_action(  # built from checked values: see engine._change
                    action_id=ids.action_id(change.change_id, name),
                    customer_id=state.customer_id,
                    action=name,
                    channel=action.channel,
                    priority=action.priority,
                    params={**action.params, "type": change.to, "rule": change.reason.rule},
                    triggered_by=change.change_id,
                    at=instant(at),
                )
            )

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
        if state.lifecycle == "lapsed" and (state.final_win_back_at is not None or name != self.last_win_back):
            if state.final_win_back_at is not None:
                return "lapsed: the last win-back was sent; no more marketing until they come back"
            return "lapsed: only the last win-back may reach them; no other marketing until they come back"
        if action.kind is Kind.PROMOTION:
            moods = sorted(self.mood & state.traits.keys())
            if moods:
                return f"no promotion while the customer is {' and '.join(moods)}"
        recent = sum(1 for t in state.marketing_log if at - t < WEEK)
        if recent >= self.cap:
            return f"frequency cap: {recent} marketing messages in the last 7 days (cap {self.cap})"
        return None


def load_playbook(
    path: str | Path | None = None, types: set[str] | None = None, rules_source: str = "the rules"
) -> Playbook:
    """The playbook at `path` (the shipped default when None), validated; `types`: the rules' type names."""
    path = Path(path) if path is not None else DEFAULT_PLAYBOOK_FILE
    spec = validated_yaml(
        path,
        PlaybookFile,
        PlaybookError,
        " (version, caps, suppress, actions, triggers)",
        context={"types": types, "rules": rules_source} if types is not None else None,
    )
    return Playbook(spec, path.name)
