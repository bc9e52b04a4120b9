"""`journey explain` and `journey types`: why a customer is what they are, and what every type means.

`explain` reads one customer's state and history from Redis and judges them again with the
rules in force, at the instant the rules last judged them, so what it shows is what the
worker decided — every rule that holds, with the signal values it read.

Ids, rule names and evidence come from outside (senders, rules files): every one is printed
through `streams.text.shown`, literally, never as rich markup or terminal control characters.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from streams.core.engine import instant, next_due
from streams.core.model import Model
from streams.core.rules.signals import CATALOGUE
from streams.core.rules.spec import TraitRule
from streams.core.state import CustomerState
from streams.text import shown


def _when(ts: float | None) -> str:
    return "—" if ts is None else instant(ts).strftime("%Y-%m-%d %H:%M")


def _literal(raw: bytes | str, chars: int = 200) -> str:
    """Text from Redis as it is, control characters escaped, cut to `chars` (it is shown as plain text, never markup)."""
    text = raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text[:chars])
    return shown + (f"… ({len(text)} characters in all)" if len(text) > chars else "")


def render_quarantined(
    console: Console,
    customer_id: str,
    raw: bytes | None,
    reason: str | None,
    record: dict[str, str],
    state_key: str,
    topics: tuple[str, str],
) -> None:
    """Print a quarantined customer (their stored state cannot be read): why, since when, and what to do.

    `reason` is why the state does not read now (None: no state is stored), `record` the quarantine
    record the worker kept (empty: none yet), `topics` the input and dead-letter topics.
    """
    say = console.print
    who = _literal(customer_id, 200)
    if raw is None:
        say(Text(f"{who}: no stored state; a quarantine record remains from {record.get('since', '?')}."))
        say(Text(f"It was quarantined because: {_literal(record.get('reason', '?'), 500)}"))
        say(Text(f"Their next event starts a new state; `journey release {who}` removes the record."))
        return
    say(Text.assemble((who, "bold"), ": ", ("QUARANTINED", "bold red"), " — their stored state cannot be read."))
    say(Text(f"why: {_literal(reason or '?', 500)}"))
    if record:
        say(Text(f"since: {record.get('since', '?')} (found by the {_literal(record.get('found', '?'), 200)})"))
    else:
        say(Text("since: not yet seen by a worker (it quarantines them at their next event or due time)"))
    say(Text(f"stored state: {len(raw)} bytes at {_literal(state_key, 300)}, beginning {_literal(raw, 200)}"))
    say(
        Text(
            "While quarantined, their events are dead-lettered (reason: the customer is quarantined) and nothing "
            "is sent for them; every other customer goes on."
        )
    )
    say(Text("What to do:"))
    say(Text("  - a version of the service that reads this state ends the quarantine by itself, at their next event;"))
    say(
        Text(
            f"  - or repair it: write a corrected state to {_literal(state_key, 300)} (used from their next event), "
            f"then `journey release {who}` removes the quarantine record;"
        )
    )
    say(Text(f"  - or start over: `journey release {who} --forget-state` deletes the state (their history is lost)."))
    say(
        Text(
            f"Their dead-lettered events stay on {topics[1]} with their raw bytes: produce them to {topics[0]} "
            "again once the quarantine has ended."
        )
    )


def render_released_note(console: Console, record: dict[str, str]) -> None:
    """A line under a readable customer who still has a quarantine record (repaired, or read by a newer version)."""
    console.print(
        Text(
            f"A quarantine record from {record.get('since', '?')} remains (their state could not be read then: "
            f"{_literal(record.get('reason', '?'), 300)}); it reads now. `journey release` removes the record.",
            style="yellow",
        )
    )


def _evidence(evidence: dict) -> str:
    return shown(", ".join(f"{k}={v}" for k, v in evidence.items()))


def _churn_line(view: dict) -> str:
    """The churn scores and what they come from, in one line."""
    model = shown(view["model"])
    if view["churn_risk"] is None:
        return f"churn model {model}: no score before a first purchase"
    return (
        f"churn model {model}: churn_risk {view['churn_risk']:.3f} (no purchase within {view['horizon_days']:g} days), "
        f"p_alive {view['p_alive']:.3f}, expected_purchases {view['expected_purchases']:.3f}; "
        f"from x={view['x']:g} repeat purchases, t_x={view['t_x']:.3f} d, T={view['T']:.3f} d"
    )


def render_customer(console: Console, state: CustomerState, history: list[dict], model: Model) -> None:
    """Print one customer's types, the rules that hold with their evidence, changes and actions."""
    rules = model.rules
    at = state.checked_at if state.checked_at is not None else state.last_seen
    values = rules.values(state, at)
    traits = ", ".join(f"{shown(t)} (since {_when(since)})" for t, since in sorted(state.traits.items())) or "none"
    console.print(
        f"[bold]{shown(state.customer_id)}[/]: lifecycle [bold]{shown(state.lifecycle)}[/] since "
        f"{_when(state.lifecycle_since)}; traits: {traits}"
    )
    console.print(f"judged at {_when(at)}; next look without an event: {_when(next_due(state))}")
    churn = rules.churn_view(state, at)
    if churn is not None:
        console.print(_churn_line(churn))
    playbook = model.playbook
    if playbook.quiet is not None:
        console.print(
            f"quiet hours {playbook.quiet.describe()} local time, in {shown(playbook.zone_name(state))}: marketing "
            "and promotion decided then are deferred to their end"
        )

    view = playbook.consent_view(state)
    if view:
        consent = Table(title="Marketing consent (service messages need none)")
        for column in ("channel", "policy", "the customer said", "marketing"):
            consent.add_column(column)
        for channel, policy, said, allowed in view:
            told = (
                "nothing yet"
                if said is None
                else f"{'granted' if said[0] else 'revoked'} {_when(said[1])}"
                + (f" via {shown(said[2])}" if said[2] else "")
            )
            consent.add_row(
                shown(channel),
                shown(policy or "none"),
                told,
                "[green]allowed[/]" if allowed else "[yellow]no (suppressed as no_consent)[/]",
            )
        console.print(consent)

    holding = Table(title=f"Rules that hold ({shown(rules.source)})")
    holding.add_column("rule")
    holding.add_column("evidence")
    decided = rules.lifecycle_type(values)
    for rule in rules.lifecycle:
        if rule.when(values):
            mark = " [green](decides: first in precedence)[/]" if rule is decided else ""
            holding.add_row(f"lifecycle.{shown(rule.type)}{mark}", _evidence(rules.evidence(rule, values)))
    for rule in rules.traits:
        if rule.when(values):
            holding.add_row(f"trait.{shown(rule.type)}", _evidence(rules.evidence(rule, values)))
    console.print(holding)

    changes = Table(title="Recent type changes (newest first)")
    for column in ("at", "change", "rule", "evidence", "caused by"):
        changes.add_column(column)
    for change in history:
        what = (
            f"{change['from'] or '—'} → {change['to']}"
            if change["dimension"] == "lifecycle"
            else f"+{change['to']}"
            if change["to"]
            else f"−{change['from']}"
        )
        changes.add_row(
            shown(change["at"][:16]),
            shown(what),
            shown(change["reason"]["rule"]),
            _evidence(change["reason"]["evidence"]),
            shown(change["caused_by"]),
        )
    console.print(changes)

    waiting = f", {len(state.deferred)} deferred" if state.deferred else ""
    actions = Table(title=f"Actions sent (last time each) — {state.actions_suppressed} suppressed in all{waiting}")
    actions.add_column("action")
    actions.add_column("last sent")
    for name, sent_at in sorted(state.actions_sent.items(), key=lambda kv: -kv[1]):
        if playbook.held_out(state.customer_id, name):
            actions.add_row(f"[magenta]{shown(name)} (held out)[/]", f"{_when(sent_at)}: to the holdouts topic instead")
        else:
            actions.add_row(shown(name), _when(sent_at))
    for sent_at, name, reason in reversed(state.suppressed_log):
        actions.add_row(f"[yellow]{shown(name)} (suppressed)[/]", f"{_when(sent_at)}: {shown(reason)}")
    for until, decided_at, name, _, trigger in state.deferred:
        actions.add_row(
            f"[cyan]{shown(name)} (deferred)[/]",
            f"deferred until {_when(until)} (quiet hours): decided {_when(decided_at)} on entering {shown(trigger)}",
        )
    console.print(actions)


def render_types(console: Console, model: Model, signals: bool = False) -> None:
    """Every type with its rule and the actions it triggers (and, with `signals`, every signal)."""
    playbook = model.playbook
    for title, section in (
        ("Lifecycle types (first that holds decides)", model.rules.spec.lifecycle),
        ("Traits", model.rules.spec.traits),
    ):
        table = Table(title=title, show_lines=True)
        for column in ("type", "rule", "actions on entering"):
            table.add_column(column)
        for rule in section:
            name = rule.type if rule.enabled else f"{rule.type} [dim](disabled)[/]"
            condition = rule.when.describe()
            if isinstance(rule, TraitRule) and rule.clear_when is not None:
                condition += "\ncleared when: " + rule.clear_when.describe()
            acts = [
                f"{a} ({playbook.actions[a].kind.value}, {playbook.actions[a].channel}, "
                f"cooldown {playbook.actions[a].cooldown_days:g} d"
                + (f", holdout {playbook.actions[a].holdout:.0%}" if playbook.actions[a].holdout else "")
                + ")"
                for a in playbook.triggers.get(rule.type, ())
            ]
            table.add_row(f"{name}\n[dim]{rule.description}[/]", condition, "\n".join(acts) or "—")
        console.print(table)
    if playbook.consent:
        console.print(
            "Consent for marketing and promotion: "
            + ", ".join(f"{shown(c)} {p.value}" for c, p in sorted(playbook.consent.items()))
            + "; other channels need none, and service actions never do."
        )
    console.print(
        f"Caps: at most {playbook.cap} marketing messages per customer per 7 days. "
        f"No promotion while: {', '.join(sorted(playbook.mood)) or 'never suppressed'}. "
        f"Lapsed customers get {playbook.last_win_back or 'no'} last win-back, then nothing."
    )
    if playbook.quiet is not None:
        console.print(
            f"Quiet hours: {playbook.quiet.describe()} in each customer's local time; marketing and promotion "
            f"decided then wait for their end (default zone {shown(playbook.default_timezone)})."
        )
    if signals:
        table = Table(title="Signals a rule may read")
        for column in ("signal", "kind", "what"):
            table.add_column(column)
        for signal in CATALOGUE.values():
            kind = "age, days" if signal.anchor else "window count" if signal.expiries else signal.kind
            table.add_row(signal.name, kind, signal.doc)
        console.print(table)
