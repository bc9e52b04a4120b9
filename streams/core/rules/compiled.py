"""Rules turned into plain closures once, at start-up, so classifying an event costs little.

`Rules.lifecycle_type` and `Rules.traits_now` are what the core calls per event; they
compute each signal at most once per call. `Rules.evidence` gives the values of every signal a
rule read (its thresholds are in the rule: `journey types`) — built only when something changed.
`Rules.next_due` says when time alone could next change the answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from streams.core.rules.codegen import Judge, build_judge
from streams.core.rules.rule import CompiledRule, Test, Values, scale
from streams.core.rules.signals import CATALOGUE, DAY, Context, churn_inputs
from streams.core.rules.spec import Condition, RulesFile, SignalRef
from streams.core.state import CustomerState
from streams.yamlfile import validated_yaml

if TYPE_CHECKING:
    from streams.core.churn.modelfile import ChurnModel

DEFAULT_RULES = Path(__file__).with_name("default.yaml")
#: The shipped variant whose at_risk is decided by the churn model's `churn_risk` (with a model file).
CHURN_RULES = Path(__file__).with_name("churn.yaml")

#: A strict comparison on an age flips just after the crossing instant: look a millisecond later.
_STRICT_NUDGE = 0.001
#: Most steps (from a millisecond, doubling) from a model score's crossing to the first instant its comparison
#: reads as flipped: the root find lands within a few milliseconds of it.
_CURVE_STEPS = 48
_CURVE_BACK = 8
#: Crossings kept per rules (`Rules.next_due`), by purchase history; all dropped at once when full.
_CROSSINGS_KEPT = 16_384
#: The churn scores `Rules.churn_view` shows.
_CHURN_SCORES = ("churn_risk", "p_alive", "expected_purchases")
#: The evidence keys that name the churn model a change was decided with, and its horizon.
CHURN_MODEL_KEY, CHURN_HORIZON_KEY = "churn_model", "churn_horizon_days"


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the line and what is wrong."""


def _threshold(ref: SignalRef) -> Callable[[Values], float | None]:
    scaled, name = scale(ref), ref.signal
    return lambda v: scaled(v[name])


_COMPARE = {
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}


def _constant_comparison(name: str, op: str, limit) -> Test:
    """The common case, spelled out per operator: it runs dozens of times per event."""
    if op == "gte":
        return lambda v: (x := v[name]) is not None and x >= limit
    if op == "gt":
        return lambda v: (x := v[name]) is not None and x > limit
    if op == "lte":
        return lambda v: (x := v[name]) is not None and x <= limit
    if op == "lt":
        return lambda v: (x := v[name]) is not None and x < limit
    if op == "eq":
        return lambda v: (x := v[name]) is not None and x == limit
    if op == "ne":
        return lambda v: (x := v[name]) is not None and x != limit
    members = frozenset(limit)
    if op == "in":
        return lambda v: (x := v[name]) is not None and x in members
    return lambda v: (x := v[name]) is not None and x not in members


def compile_condition(cond: Condition) -> Test:
    """A closure answering the condition; a signal with no value (None) satisfies no comparison."""
    if cond.signal is not None:
        name, op = cond.signal, cond.operator
        operand = cond.operand(op)
        if not isinstance(operand, SignalRef):
            return _constant_comparison(name, op, operand)
        compare, threshold = _COMPARE[op], _threshold(operand)

        def comparison(v: Values) -> bool:
            value = v[name]
            if value is None:
                return False
            limit = threshold(v)
            return limit is not None and compare(value, limit)

        return comparison
    if cond.all is not None:
        tests = tuple(compile_condition(c) for c in cond.all)
        if len(tests) == 2:
            first, second = tests
            return lambda v: first(v) and second(v)
        return lambda v: all(t(v) for t in tests)
    if cond.any is not None:
        tests = tuple(compile_condition(c) for c in cond.any)
        if len(tests) == 2:
            first, second = tests
            return lambda v: first(v) or second(v)
        return lambda v: any(t(v) for t in tests)
    assert cond.not_ is not None  # `Condition._one_form`: neither a comparison, `all` nor `any`, so a `not`
    inner = compile_condition(cond.not_)
    return lambda v: not inner(v)


def _any_of(kinds: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """The union of what can change each part; None (any event) when one part can change with any."""
    out: frozenset[str] = frozenset()
    for kind in kinds:
        if kind is None:
            return None
        out |= kind
    return out


def _written(rule: CompiledRule) -> Condition:
    """The condition of a rule compiled from the file (only placeholders for undefined traits have none)."""
    assert rule.condition is not None
    return rule.condition


def signals_of(cond: Condition | None) -> list[str]:
    """Every signal a condition reads, thresholds included, in the order written."""
    if cond is None:
        return []
    if cond.signal is not None:
        value = cond.operand(cond.operator)
        return [cond.signal] + ([value.signal] if isinstance(value, SignalRef) else [])
    out: list[str] = []
    for child in cond.all or cond.any or (cond.not_,):
        out += [s for s in signals_of(child) if s not in out]
    return out


def _age_checks(cond: Condition | None) -> list[tuple[str, str, object]]:
    """(age signal, operator, threshold) of every comparison on a signal that grows with time."""
    if cond is None:
        return []
    if cond.signal is not None:
        if CATALOGUE[cond.signal].anchor is not None and cond.operator in ("gte", "gt", "lte", "lt"):
            return [(cond.signal, cond.operator, cond.operand(cond.operator))]
        return []
    return [check for child in (cond.all or cond.any or (cond.not_,)) for check in _age_checks(child)]


def _curve_checks(cond: Condition | None) -> list[tuple[str, str, float]]:
    """(model score, operator, constant) of every comparison on a score that time alone moves.

    The rules file compares such a score only with gte / gt / lte / lt and a number (`spec.py`).
    """
    if cond is None:
        return []
    if cond.signal is not None:
        if CATALOGUE[cond.signal].curve is not None:
            return [(cond.signal, cond.operator, float(cond.operand(cond.operator)))]
        return []
    return [check for child in (cond.all or cond.any or (cond.not_,)) for check in _curve_checks(child)]


def _passed(rising: bool, strict: bool, limit: float) -> Callable[[float], bool]:
    """Whether a score's value is past the point where a comparison with `limit` flips, never to flip back.

    Rising: `gte` / `lt` flip once it is >= limit, `gt` / `lte` once it is > limit; falling: `gte` / `lt`
    flip once it is < limit, `gt` / `lte` once it is <= limit. `strict`: the comparison is `gt` or `lte`.
    """
    if rising:
        return (lambda v: v > limit) if strict else (lambda v: v >= limit)
    return (lambda v: v <= limit) if strict else (lambda v: v < limit)


class Rules:
    """A validated rules file, compiled. Immutable (but for the crossings it keeps, which only spare work);
    share one per process."""

    def __init__(self, spec: RulesFile, source: str = "rules", churn: ChurnModel | None = None) -> None:
        """`churn`: the model the churn signals score with (`streams/core/churn/modelfile.py`); None: they
        have no value, so no comparison on them holds."""
        self.spec, self.source, self.churn = spec, source, churn
        s = spec.settings
        self.ctx = Context(
            frozenset(c.upper() for c in s.home_countries),
            frozenset(lang.lower() for lang in s.home_languages),
            s.first_rhythm_days,
            s.churn_horizon_days,
            churn,
        )
        self.lifecycle = [self._compile(r, None) for r in spec.lifecycle if r.enabled]
        self.traits = [self._compile(r, r.clear_when) for r in spec.traits if r.enabled]
        self.trait_names = frozenset(r.type for r in self.traits)
        conds = [r.when for r in spec.lifecycle if r.enabled]
        conds += [c for r in spec.traits if r.enabled for c in (r.when, r.clear_when) if c is not None]
        by_signal: dict[str, list] = {}
        for name, op, value in (check for c in conds for check in _age_checks(c)):
            if isinstance(value, SignalRef) and CATALOGUE[value.signal].anchor is not None:
                continue  # two ages grow together: their difference is fixed, time alone never flips it
            entry = (value, _STRICT_NUDGE if op in ("gt", "lte") else 0.0)
            if entry not in by_signal.setdefault(name, []):
                by_signal[name].append(entry)
        # Per age: its anchor and, per threshold, (constant limit or None, scale and base reader, nudge).
        self._ages_by_signal = [
            (
                anchor,
                tuple(
                    (None, scale(value), CATALOGUE[value.signal].read, nudge)
                    if isinstance(value, SignalRef)
                    else (value, None, None, nudge)
                    for value, nudge in checks
                ),
            )
            for name, checks in by_signal.items()
            if (anchor := CATALOGUE[name].anchor) is not None  # always: `_age_checks` keeps only ages
        ]
        # Per comparison on a model score: its reader, how it moves, and when its answer has flipped for good.
        curves: dict[tuple[str, str, float], None] = {}
        for check in (check for c in conds for check in _curve_checks(c)):
            curves.setdefault(check)
        self._curves = [
            (signal.read, curve.reach, limit, _passed(curve.rising, op in ("gt", "lte"), limit))
            for name, op, limit in curves
            if (curve := (signal := CATALOGUE[name]).curve) is not None  # always: `_curve_checks` keeps only these
        ]
        self._crossings: dict[tuple, float | None] = {}
        #: The model scores the rules read (their evidence names the model).
        self.churn_signals = frozenset(name for c in conds for name in signals_of(c) if CATALOGUE[name].curve)
        windowed = {name for c in conds for name in signals_of(c) if CATALOGUE[name].expiries is not None}
        self._windows = [e for name in sorted(windowed) if (e := CATALOGUE[name].expiries) is not None]
        self._affected: dict[tuple[str, ...], tuple[bool, list[CompiledRule]]] = {}
        self._judges: dict[tuple[tuple[str, ...] | None, bool], Judge | None] = {}
        self._judges_by_rules: dict[tuple[bool, tuple[str, ...]], Judge] = {}
        self._prospect = next(r for r in self.lifecycle if r.type == "prospect")
        # What an event must touch for the next due time to move: the anchors and windows, and
        # the signals their thresholds scale.
        timed = {name for name in by_signal} | windowed | {name for name, _, _ in curves}
        timed |= {value.signal for checks in by_signal.values() for value, _ in checks if isinstance(value, SignalRef)}
        self._due_on = _any_of(CATALOGUE[name].on for name in timed)

    @staticmethod
    def _compile(rule, clear: Condition | None) -> CompiledRule:
        reads = signals_of(rule.when) + [s for s in signals_of(clear) if s not in signals_of(rule.when)]
        on = _any_of(CATALOGUE[name].on for name in reads)
        return CompiledRule(
            rule.type,
            rule.description,
            compile_condition(rule.when),
            None if clear is None else compile_condition(clear),
            tuple(reads),
            on,
            rule.when,
            clear,
        )

    # --- per event
    def values(self, state: CustomerState, now: float) -> Values:
        return Values(state, now, self.ctx)

    def affected_by(self, marks: tuple[str, ...] | None) -> tuple[bool, list[CompiledRule]]:
        """Whether an event can change the lifecycle type, and which traits it can change.

        `marks`: the event's touchpoint kind and the "@…" marks of `Signal.on`. Sound because
        every change time alone makes has already been applied at a due time before the event:
        between dues, only the event's own effect on the state can move a rule's answer, and it
        moves only the signals its marks name. `None`: judge everything.
        """
        if marks is None:
            return True, self.traits
        found = self._affected.get(marks)
        if found is None:
            hit = set(marks)
            found = self._affected[marks] = (
                any(r.on is None or hit & r.on for r in self.lifecycle),
                [r for r in self.traits if r.on is None or hit & r.on],
            )
        return found

    def judge_for(self, marks: tuple[str, ...] | None, lifecycle_unknown: bool) -> Judge | None:
        """The generated judge (`codegen.py`) of every rule an event with these marks can affect.

        None when it affects none and the customer already has a lifecycle type: nothing to judge.
        The judge's lifecycle answer is None when the lifecycle type is not judged.
        """
        key = (marks, lifecycle_unknown)
        try:
            return self._judges[key]
        except KeyError:
            pass
        judge_lifecycle, traits = self.affected_by(marks)
        judge_lifecycle = judge_lifecycle or lifecycle_unknown
        judge = None
        if judge_lifecycle or traits:
            same = (judge_lifecycle, tuple(r.type for r in traits))  # many marks share one set of rules
            judge = self._judges_by_rules.get(same)
            if judge is None:
                judge = self._judges_by_rules[same] = build_judge(
                    [(r, _written(r)) for r in self.lifecycle] if judge_lifecycle else None,
                    self._prospect,
                    [(r, _written(r), r.clear_condition) for r in traits],
                    self.ctx,
                )
        self._judges[key] = judge
        return judge

    def undefined_traits(self, held: dict[str, float]) -> list[CompiledRule]:
        """Traits held that the rules no longer define (or that were disabled): to be dropped."""
        if self.trait_names.issuperset(held):
            return []
        return [
            CompiledRule(name, "no longer defined in the rules", lambda v: False, None, ())
            for name in held
            if name not in self.trait_names
        ]

    def lifecycle_type(self, v: Values) -> CompiledRule:
        """The first enabled lifecycle rule that holds (the `prospect` rule must hold for everyone else)."""
        for rule in self.lifecycle:
            if rule.when(v):
                return rule
        return next(r for r in self.lifecycle if r.type == "prospect")

    def traits_now(
        self, v: Values, held: dict[str, float], candidates: list[CompiledRule] | None = None
    ) -> tuple[list[CompiledRule], list[CompiledRule]]:
        """Traits to add and traits to drop among `candidates` (all by default), given the ones held."""
        added, dropped = [], []
        for rule in self.traits if candidates is None else candidates:
            if rule.type in held:
                gone = rule.clear_when(v) if rule.clear_when is not None else not rule.when(v)
                if gone:
                    dropped.append(rule)
            elif rule.when(v):
                added.append(rule)
        dropped += self.undefined_traits(held)
        return added, dropped

    def evidence(self, rule: CompiledRule, v: Values) -> dict:
        """The values of every signal the rule reads, at this instant (what a person needs to see why).

        A rule that reads a churn score also names the model file and its date, and the horizon, so a
        change can be traced to the fit that decided it.
        """
        out = {
            name: round(value, 3) if isinstance(value, float) else value for name in rule.reads for value in (v[name],)
        }
        if self.churn is not None and self.churn_signals.intersection(rule.reads):
            out[CHURN_MODEL_KEY] = self.churn.label
            out[CHURN_HORIZON_KEY] = self.ctx.churn_horizon_days
        return out

    def churn_view(self, state: CustomerState, now: float) -> dict | None:
        """The churn scores at `now` and what they come from: the model (file name and fit date), the horizon, and
        the customer's x, t_x and T (days). None without a model; the scores and inputs are None before a purchase."""
        if self.churn is None:
            return None
        found = churn_inputs(state, now, self.ctx)
        inputs: dict[str, float | None] = {"x": None, "t_x": None, "T": None} if found is None else dict(found)
        scores = {name: CATALOGUE[name].read(state, now, self.ctx) for name in _CHURN_SCORES}
        return {
            "model": self.churn.label,
            "horizon_days": self.ctx.churn_horizon_days,
            **{name: None if value is None else round(value, 6) for name, value in scores.items()},
            "x": inputs["x"],
            "t_x": inputs["t_x"],
            "T": inputs["T"],
        }

    # --- time
    def due_may_move(self, marks: tuple[str, ...]) -> bool:
        """Whether an event with these marks can change when time alone next changes an answer."""
        return self._due_on is None or not self._due_on.isdisjoint(marks)

    def _crossing(self, i: int, state: CustomerState, after: float) -> float | None:
        """The first millisecond (times are kept to the millisecond) after `after` at which the comparison on a
        model score (`self._curves[i]`) reads as flipped; None: never. The score has not passed it at `after`."""
        read, reach, limit, passed = self._curves[i]
        at = reach(state, self.ctx, after, limit)
        if at is None:
            return None
        at, step = math.ceil(max(at, after) * 1000.0) / 1000.0, 0.001
        for _ in range(_CURVE_STEPS):
            value = read(state, at, self.ctx)
            if value is not None and passed(value):
                break
            at = round(at + step, 3)
            step *= 2.0
        else:
            return None
        for _ in range(_CURVE_BACK):  # and not a millisecond later than that
            earlier = round(at - 0.001, 3)
            value = read(state, earlier, self.ctx) if earlier > after else None
            if value is None or not passed(value):
                break
            at = earlier
        return at

    def next_due(self, state: CustomerState, after: float) -> float | None:
        """The earliest instant after `after` at which time alone may change a rule's answer."""
        best = None
        for anchor_of, checks in self._ages_by_signal:
            anchor = anchor_of(state)
            if anchor is None:
                continue
            for limit, scaled, base, nudge in checks:
                if limit is None:
                    assert scaled is not None and base is not None  # a threshold with no constant scales a signal
                    limit = scaled(base(state, after, self.ctx))
                    if limit is None:
                        continue
                at = anchor + limit * DAY + nudge
                if at > after and (best is None or at < best):
                    best = at
        for i, (read, _, _, passed) in enumerate(self._curves):
            value = read(state, after, self.ctx)
            if value is None or passed(value):
                continue  # no score yet (an event sets one, and reschedules), or past the flip for good
            # For one purchase history the crossing is one instant, whenever it is asked for: kept, so that the
            # events and due times between two purchases do not search for it again.
            key = (i, state.first_purchase_at, state.last_purchase_at, state.purchases)
            try:
                at = self._crossings[key]
            except KeyError:
                if len(self._crossings) >= _CROSSINGS_KEPT:
                    self._crossings.clear()
                at = self._crossings[key] = self._crossing(i, state, after)
            if at is not None and at > after and (best is None or at < best):
                best = at
        if state.support_log:
            for expiries in self._windows:
                for at in expiries(state):
                    if at > after:
                        if best is None or at < best:
                            best = at
                        break  # the log is in time order: later entries expire later
        return best


def load_rules(path: str | Path | None = None, churn: ChurnModel | None = None) -> Rules:
    """The rules file at `path` (the shipped default when None), validated and compiled; `churn`: the model
    the churn signals score with (None: they have no value)."""
    path = Path(path) if path is not None else DEFAULT_RULES
    spec = validated_yaml(path, RulesFile, RulesError, " (version, settings, lifecycle, traits)")
    return Rules(spec, path.name, churn)
