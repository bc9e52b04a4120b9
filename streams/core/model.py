"""Everything the core decides with, besides the state and the event: rules, playbook, dedupe window.

Loaded once at start-up from the files the settings name (the shipped defaults otherwise)
and checked against each other: a playbook may only name types the rules define. A bad
file stops the worker before it consumes anything, with a message naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.core.playbook.playbook import Playbook, load_playbook
from streams.core.rules.compiled import Rules, load_rules


@dataclass(frozen=True)
class Model:
    rules: Rules
    playbook: Playbook
    dedupe_window: int = 32

    @property
    def type_names(self) -> set[str]:
        return {r.type for r in self.rules.spec.lifecycle} | {r.type for r in self.rules.spec.traits}


def load_model(
    rules_file: str | Path | None = None, playbook_file: str | Path | None = None, dedupe_window: int = 32
) -> Model:
    rules = load_rules(rules_file)
    types = {r.type for r in rules.spec.lifecycle} | {r.type for r in rules.spec.traits}
    return Model(rules, load_playbook(playbook_file, types, rules.source), max(1, dedupe_window))
