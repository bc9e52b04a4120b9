"""The rules file, as pydantic models: what a user may write, and nothing else.

A condition is a comparison of one signal (`{signal: coupon_share, gte: 0.5}`), or `all`,
`any`, `not` over conditions. A threshold is a number, a bool, a list (for `in`), or a
reference to another signal scaled by a factor with a floor
(`{signal: purchase_rhythm_days, times: 3, floor: 30}`). Nothing is evaluated as code.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator, model_validator

from streams.core.rules.signals import CATALOGUE
from streams.yamlfile import custom_error

#: The lifecycle types the processor knows (the domain file, section 2). Traits are open: a user may add one.
LIFECYCLE_TYPES = ("prospect", "free_user", "new", "loyal", "advocate", "at_risk", "lapsed")
OPERATORS = ("gte", "gt", "lte", "lt", "eq", "ne", "in", "not_in")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def check_signal(name: str) -> str:
    if name not in CATALOGUE:
        close = difflib.get_close_matches(name, list(CATALOGUE), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else " (`journey types --signals` lists them)"
        raise ValueError(f"unknown signal {name!r}: the processor keeps no such state{hint}")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalRef(_Strict):
    """Another signal's value, scaled: max(floor, min(ceil, times × value + plus))."""

    signal: str
    times: float = 1.0
    plus: float = 0.0
    floor: float | None = None
    ceil: float | None = None

    _signal_known = field_validator("signal")(check_signal)

    @model_validator(mode="after")
    def _numeric(self) -> SignalRef:
        signal = CATALOGUE[self.signal]
        if signal.kind != "number":
            raise ValueError(f"signal {self.signal!r} is not a number and cannot be a threshold")
        if signal.curve is not None:
            raise ValueError(
                f"model score {self.signal!r} cannot be a threshold: compare it with a number "
                "(time alone moves it, so the due time of a comparison is computed from the model)"
            )
        if signal.anchor is not None and (self.times != 1 or self.floor is not None or self.ceil is not None):
            raise ValueError(
                f"age {self.signal!r} as a threshold takes only `plus` (two ages grow together; "
                "scaled, they would cross at times no rule states)"
            )
        return self


Threshold = float | SignalRef


class Condition(_Strict):
    """Exactly one of: a comparison (`signal` + one operator), `all`, `any`, `not`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    signal: str | None = None
    gte: Threshold | None = None
    gt: Threshold | None = None
    lte: Threshold | None = None
    lt: Threshold | None = None
    eq: float | bool | None = None
    ne: float | bool | None = None
    in_: list[float] | None = Field(None, alias="in")
    not_in: list[float] | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        ops = [op for op in OPERATORS if self.operand(op) is not None]
        groups = [g for g in ("all", "any", "not") if self.group(g) is not None]
        if self.signal is None:
            if ops:
                raise ValueError(f"operator {ops[0]!r} needs a `signal` to compare")
            if len(groups) != 1:
                raise ValueError("a condition is one comparison (`signal` + operator) or one of `all`, `any`, `not`")
            return self
        check_signal(self.signal)
        if groups:
            raise ValueError(f"`{groups[0]}` cannot sit beside `signal` in the same condition")
        if len(ops) != 1:
            raise ValueError(f"a comparison of {self.signal!r} needs exactly one operator of {', '.join(OPERATORS)}")
        op, value = ops[0], self.operand(ops[0])
        kind = CATALOGUE[self.signal].kind
        if kind == "bool" and (op not in ("eq", "ne") or not isinstance(value, bool)):
            raise ValueError(f"signal {self.signal!r} is true or false: compare it with `eq: true` or `eq: false`")
        if kind == "number" and isinstance(value, bool):
            raise ValueError(f"signal {self.signal!r} is a number: {op} needs a number, not {value!r}")
        if CATALOGUE[self.signal].curve is not None and (op not in ("gte", "gt", "lte", "lt") or not _is_number(value)):
            raise ValueError(
                f"model score {self.signal!r} moves with time: compare it with gte, gt, lte or lt and a number "
                "(the instant it crosses one is computed from the model)"
            )
        return self

    def operand(self, op: str):
        return getattr(self, {"in": "in_"}.get(op, op))

    def group(self, name: str):
        return getattr(self, {"not": "not_"}.get(name, name))

    @property
    def operator(self) -> str:
        return next(op for op in OPERATORS if self.operand(op) is not None)

    def describe(self) -> str:
        """The condition in words and symbols, for people (`journey types`)."""
        if self.signal is not None:
            value = self.operand(self.operator)
            return f"{self.signal} {_SYMBOL[self.operator]} {_threshold_text(value)}"
        if self.not_ is not None:
            return f"not ({self.not_.describe()})"
        parts, joiner = (self.all, " and ") if self.all is not None else (self.any, " or ")
        if not parts:
            return "always" if self.all is not None else "never"
        inner = [p.describe() if p.signal is not None or p.not_ is not None else f"({p.describe()})" for p in parts]
        return joiner.join(inner)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SYMBOL = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<", "eq": "=", "ne": "≠", "in": "in", "not_in": "not in"}


def _number(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x).lower() if isinstance(x, bool) else str(x)


def _threshold_text(value) -> str:
    if isinstance(value, SignalRef):
        text = value.signal if value.times == 1 else f"{_number(value.times)} × {value.signal}"
        if value.plus:
            text += f" + {_number(value.plus)}"
        if value.floor is not None:
            text = f"max({_number(value.floor)}, {text})"
        if value.ceil is not None:
            text = f"min({_number(value.ceil)}, {text})"
        return text
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return _number(value)


class Settings(_Strict):
    home_countries: list[str] = Field(default_factory=list, description="ISO country codes of the home market.")
    home_languages: list[str] = Field(default_factory=list, description="Primary language subtags of the home market.")
    first_rhythm_days: PositiveFloat = Field(30.0, description="Purchase rhythm assumed until a second purchase.")
    churn_horizon_days: PositiveFloat = Field(
        90.0,
        le=36_500,
        description="The horizon of the churn signals: churn_risk is P(no purchase within it), "
        "expected_purchases the purchases expected within it.",
    )


class LifecycleRule(_Strict):
    type: Literal[LIFECYCLE_TYPES]  # type: ignore[valid-type]
    description: str = ""
    enabled: bool = True
    when: Condition


class TraitRule(_Strict):
    type: str
    description: str = ""
    enabled: bool = True
    when: Condition
    clear_when: Condition | None = Field(
        None, description="When the trait is dropped; default: when `when` no longer holds."
    )

    @field_validator("type")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"trait name {value!r}: use lower-case letters, digits and underscores")
        if value in LIFECYCLE_TYPES:
            raise ValueError(f"{value!r} is a lifecycle type, not a trait")
        return value


class RulesFile(_Strict):
    version: Literal[1]
    settings: Settings = Field(default_factory=Settings)
    lifecycle: list[LifecycleRule] = Field(description="In precedence order: the first whose `when` holds decides.")
    traits: list[TraitRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        sections: tuple[tuple[str, Sequence[LifecycleRule | TraitRule]], ...] = (
            ("lifecycle", self.lifecycle),
            ("traits", self.traits),
        )
        for section, rules in sections:
            seen = set()
            for i, rule in enumerate(rules):
                if rule.type in seen:
                    raise custom_error(f"{rule.type!r} is defined twice", at=f"{section}.{i}.type")
                seen.add(rule.type)
        if not any(r.enabled and r.type == "prospect" for r in self.lifecycle):
            raise ValueError("lifecycle: an enabled `prospect` rule is needed (every customer has a lifecycle type)")
        return self
