"""What a replay found: customers per type and trait, the transition matrix, actions, dead letters.

Kept apart from the run so the CLI, `summary.json` and the chart read one structure.
Everything in `summary()` is deterministic (no timings), so it can sit next to golden files.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Display order of the lifecycle types (the journey's, not the rules' precedence); types the
#: rules file adds follow, sorted.
TYPE_ORDER = ("prospect", "free_user", "new", "loyal", "advocate", "at_risk", "lapsed")
#: How a customer's first type's "from" (None) is shown.
NO_TYPE = "—"


def ordered_types(types) -> list[str]:
    """Known lifecycle types first, in lifecycle order, then any others sorted."""
    types = set(types)
    return [t for t in TYPE_ORDER if t in types] + sorted(t for t in types if t not in TYPE_ORDER)


def label(kind: str | None) -> str:
    return NO_TYPE if kind is None else kind


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
_REPEATS = re.compile(r"'…'(?:(?:, | or )'…')+")


def reason_of(error: str, width: int = 90) -> str:
    """The kind of an error, for counting: its text without the values that vary line to line."""
    text = _NUMBER.sub("N", _QUOTED.sub("'…'", error))
    text = _REPEATS.sub("'…'", text)
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class ReplayReport:
    """The counts of one replay. `transitions` keys are (from, to); from is None for a first type."""

    records: int = 0
    events: int = 0
    duplicates: int = 0
    changes: int = 0
    actions: int = 0
    customers: int = 0
    erasures: int = 0  # customers forgotten on request (erasures.jsonl)
    lifecycle: Counter = field(default_factory=Counter)
    traits: Counter = field(default_factory=Counter)  # trait -> customers holding it at the end
    traits_entered: Counter = field(default_factory=Counter)  # trait -> changes that added it
    traits_cleared: Counter = field(default_factory=Counter)  # trait -> changes that removed it
    transitions: Counter = field(default_factory=Counter)
    actions_sent: Counter = field(default_factory=Counter)
    actions_suppressed: Counter = field(default_factory=Counter)
    actions_deferred: Counter = field(
        default_factory=Counter
    )  # decided in quiet hours, sent or suppressed at their end
    actions_held_out: Counter = field(default_factory=Counter)  # action -> customers held out of it (holdouts.jsonl)
    #: (action, the rule that suppressed it, with the rule's values: `suppression_rule`) -> times
    suppressed_why: Counter = field(default_factory=Counter)
    dead_lettered: Counter = field(default_factory=Counter)
    until: str | None = None
    elapsed_s: float = 0.0
    out_dir: Path | None = None
    store: dict[str, Any] = field(default_factory=dict)

    @property
    def dead_letters(self) -> int:
        return sum(self.dead_lettered.values())

    def summary(self) -> dict[str, Any]:
        """The report as JSON-ready data, in a stable order (no timings: it is reproducible)."""
        return {
            "records": self.records,
            "events": self.events,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_letters,
            "changes": self.changes,
            "actions": self.actions,
            "customers": self.customers,
            "erasures": self.erasures,
            "until": self.until,
            "customers_per_lifecycle": {t: self.lifecycle[t] for t in ordered_types(self.lifecycle)},
            "customers_per_trait": dict(sorted(self.traits.items())),
            "traits_entered": dict(sorted(self.traits_entered.items())),
            "traits_cleared": dict(sorted(self.traits_cleared.items())),
            "transitions": [
                {"from": a, "to": b, "changes": n}
                for (a, b), n in sorted(self.transitions.items(), key=lambda kv: _pair_key(kv[0]))
            ],
            "actions_sent": dict(sorted(self.actions_sent.items())),
            "actions_suppressed": dict(sorted(self.actions_suppressed.items())),
            "actions_deferred": dict(sorted(self.actions_deferred.items())),
            "actions_held_out": dict(sorted(self.actions_held_out.items())),
            "suppressed_per_reason": [
                {"action": a, "reason": r, "times": n} for (a, r), n in sorted(self.suppressed_why.items())
            ],
            "dead_lettered_per_reason": dict(sorted(self.dead_lettered.items(), key=lambda kv: (-kv[1], kv[0]))),
        }

    def print(self, console: Console) -> None:
        """The report as rich tables."""
        for table in self.tables():
            console.print(table)
        console.print(
            f"{self.records} records: {self.events} events applied ({self.duplicates} duplicates), "
            f"{self.dead_letters} dead-lettered; {self.changes} changes, {self.actions} actions; "
            f"{self.customers} customers"
            + (f" ({self.erasures} forgotten on request)" if self.erasures else "")
            + f"; {self.elapsed_s:.1f}s"
            + (f" ({self.records / self.elapsed_s:,.0f} records/s)" if self.elapsed_s else "")
        )

    def tables(self) -> list[Table]:
        types = _table("Customers per lifecycle type", "type", "customers")
        for kind in ordered_types(self.lifecycle):
            types.add_row(kind, str(self.lifecycle[kind]))
        traits = _table("Customers per trait", "trait", "customers")
        traits.add_column("entered", justify="right")
        traits.add_column("cleared", justify="right")
        for trait in sorted(self.traits.keys() | self.traits_entered.keys()):
            traits.add_row(
                trait, str(self.traits[trait]), str(self.traits_entered[trait]), str(self.traits_cleared[trait])
            )
        if not self.traits and not self.traits_entered:
            traits.add_row("[dim](none)[/]", "0", "0", "0")
        return [types, traits, self.matrix(), self.action_table(), self.dead_table()]

    def matrix(self) -> Table:
        """From (rows) × to (columns): how many changes moved customers between lifecycle types."""
        rows = [None, *ordered_types(a for a, _ in self.transitions if a is not None)]
        cols = ordered_types(b for _, b in self.transitions if b is not None)
        table = _titled("Lifecycle transitions (from → to)")
        table.add_column("from \\ to")
        for col in cols:
            table.add_column(col, justify="right")
        for row in rows:
            if any(self.transitions[(row, col)] for col in cols):
                table.add_row(label(row), *(str(self.transitions[(row, col)] or "·") for col in cols))
        return table

    def action_table(self) -> Table:
        table = _table("Nurture actions", "action", "sent")
        table.add_column("suppressed", justify="right")
        table.add_column("why suppressed")
        if self.actions_deferred:
            table.add_column("deferred (quiet hours)", justify="right")
        if self.actions_held_out:
            table.add_column("held out", justify="right")
        names = set(self.actions_sent) | set(self.actions_suppressed) | set(self.actions_deferred)
        for name in sorted(names | set(self.actions_held_out)):
            why = sorted(
                ((n, r) for (a, r), n in self.suppressed_why.items() if a == name), key=lambda x: (-x[0], x[1])
            )
            table.add_row(
                name,
                str(self.actions_sent[name]),
                str(self.actions_suppressed[name]),
                Text("\n".join(f"{n} × {r}" for n, r in why)),
                *([str(self.actions_deferred[name])] if self.actions_deferred else []),
                *([str(self.actions_held_out[name])] if self.actions_held_out else []),
            )
        return table

    def dead_table(self) -> Table:
        table = _table(f"Dead-lettered records: {self.dead_letters}", "reason", "records")
        for reason, n in sorted(self.dead_lettered.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(Text(reason), str(n))
        if not self.dead_lettered:
            table.add_row("[dim](none)[/]", "0")
        return table


def _pair_key(pair: tuple[str | None, str | None]) -> tuple:
    rank = {t: i for i, t in enumerate(TYPE_ORDER)}
    return tuple((-1, "") if t is None else (rank.get(t, len(rank)), t) for t in pair)


def _titled(title: str) -> Table:
    return Table(title=title, title_justify="left", min_width=len(title) + 2)


def _table(title: str, first: str, second: str) -> Table:
    table = _titled(title)
    table.add_column(first)
    table.add_column(second, justify="right")
    return table
