"""Everything the core decides with, besides the state and the event: rules, playbook, dedupe window,
and the money settings (the state's currency, the rates into it, the largest order).

Loaded once at start-up from the files the settings name (the shipped defaults otherwise)
and checked against each other: a playbook may only name types the rules define. A bad
file stops the worker before it consumes anything, with a message naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from streams.core.money import Money
from streams.core.playbook.playbook import DEFAULT_HOLDOUT_SALT, Playbook, load_playbook
from streams.core.rules.compiled import Rules, load_rules

if TYPE_CHECKING:
    from streams.core.churn.modelfile import ChurnModel


@dataclass(frozen=True)
class Model:
    rules: Rules
    playbook: Playbook
    dedupe_window: int = 16
    money: Money = field(default_factory=Money)

    @property
    def type_names(self) -> set[str]:
        return {r.type for r in self.rules.spec.lifecycle} | {r.type for r in self.rules.spec.traits}


def load_model(
    rules_file: str | Path | None = None,
    playbook_file: str | Path | None = None,
    dedupe_window: int = 16,
    money: Money | None = None,
    default_timezone: str = "UTC",
    holdout_salt: str | None = None,
    churn: ChurnModel | None = None,
) -> Model:
    """`money`: from `streams.core.money.load_money` (the default: EUR, no rates); `default_timezone`: the
    zone of quiet hours for customers with no zone of their own or of their country (JOURNEY_DEFAULT_TIMEZONE);
    `holdout_salt`: the key of holdout draws (JOURNEY_HOLDOUT_SALT; None: the documented default); `churn`: the
    churn model the rules' churn signals score with (`load_churn_model`, JOURNEY_CHURN_MODEL_FILE; None: no value)."""
    rules = load_rules(rules_file, churn=churn)
    types = {r.type for r in rules.spec.lifecycle} | {r.type for r in rules.spec.traits}
    salt = DEFAULT_HOLDOUT_SALT if holdout_salt is None else holdout_salt
    playbook = load_playbook(playbook_file, types, rules.source, default_timezone, salt)
    return Model(rules, playbook, max(1, dedupe_window), Money() if money is None else money)
