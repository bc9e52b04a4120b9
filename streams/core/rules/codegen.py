"""The per-event judge: the rules compiled into one plain Python function per set of rules to judge.

Why: judging through a tree of closures cost one call per condition and two per signal, and
was the largest share of the core's time. Here one call judges every rule an event can
affect; each signal is read at most once, into a local variable, and only when a condition
needs it (the same short-circuit order as the closures).

Rules stay data. The generated source is built from the fixed templates below and names this
module mints (`s3`, `_k7`, `_r2`); nothing from the rules file is ever written into it. Every
value from the file — thresholds, lists, the rules themselves, signal readers — reaches the
function as an object bound in its namespace, so no text a user wrote is evaluated as
Python. The closures of `compiled.py` remain the reference (`journey explain` uses them), and
tests/unit/core/test_rules_codegen.py checks that both give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from streams.core.rules.rule import CompiledRule, scale
from streams.core.rules.signals import CATALOGUE
from streams.core.rules.spec import Condition, SignalRef
from streams.core.state import CustomerState

#: Answers (lifecycle rule or None when not judged, traits to add, traits to drop).
Judge = Callable[[CustomerState, float, dict[str, float]], tuple[Any, list, list]]

_OPERATOR = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<", "eq": "==", "ne": "!=", "in": "in", "not_in": "not in"}


class _Unread:
    """Marks a signal not read yet in this call (None is a value: "no value")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unread>"


class _Emitter:
    """Builds one function's source; every object it needs gets a minted name in `namespace`."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.slots: dict[str, str] = {}  # signal name -> local variable

    def bind(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def signal(self, name: str) -> str:
        """An expression for the signal's value, read once per call (the local caches it)."""
        local = self.slots.get(name)
        if local is None:
            local = self.slots[name] = f"s{len(self.slots)}"
            self.namespace[f"_r{local[1:]}"] = CATALOGUE[name].read
        return f"({local} if {local} is not _U else ({local} := _r{local[1:]}(st, now, _ctx)))"

    def condition(self, cond: Condition) -> str:
        """A boolean expression with the closures' meaning: a signal with no value satisfies no comparison."""
        if cond.signal is not None:
            op = cond.operator
            operand = cond.operand(op)
            value = self.signal(cond.signal)
            if isinstance(operand, SignalRef):
                limit = f"{self.bind('_t', scale(operand))}({self.signal(operand.signal)})"
                return f"((x := {value}) is not None and (y := {limit}) is not None and x {_OPERATOR[op]} y)"
            constant = frozenset(operand) if op in ("in", "not_in") else operand
            return f"((x := {value}) is not None and x {_OPERATOR[op]} {self.bind('_k', constant)})"
        if cond.all is not None:
            return "(" + " and ".join(self.condition(c) for c in cond.all) + ")" if cond.all else "True"
        if cond.any is not None:
            return "(" + " or ".join(self.condition(c) for c in cond.any) + ")" if cond.any else "False"
        assert cond.not_ is not None  # `Condition._one_form`: neither a comparison, `all` nor `any`, so a `not`
        return f"(not {self.condition(cond.not_)})"


def build_judge(
    lifecycle: Sequence[tuple[CompiledRule, Condition]] | None,
    fallback: CompiledRule | None,
    traits: Sequence[tuple[CompiledRule, Condition, Condition | None]],
    ctx: Any,
) -> Judge:
    """One function judging these lifecycle rules (None: not judged) and these traits, in order.

    `lifecycle`: (rule, its condition) in precedence order, `fallback` when none holds.
    `traits`: (rule, when, clear_when or None).
    """
    namespace: dict[str, Any] = {"_U": _Unread(), "_ctx": ctx}
    emit = _Emitter(namespace)
    body: list[str] = []
    if lifecycle is None:
        body.append("life = None")
    else:
        keyword = "if"
        for rule, when in lifecycle:
            body += [f"{keyword} {emit.condition(when)}:", f"    life = {emit.bind('_L', rule)}"]
            keyword = "elif"
        body += (
            ["else:", f"    life = {emit.bind('_L', fallback)}"]
            if lifecycle
            else [f"life = {emit.bind('_L', fallback)}"]
        )
    body += ["added = []", "dropped = []"]
    for rule, when, clear in traits:
        name, rule_name = emit.bind("_n", rule.type), emit.bind("_T", rule)
        gone = emit.condition(clear) if clear is not None else f"not {emit.condition(when)}"
        body += [
            f"if {name} in held:",
            f"    if {gone}:",
            f"        dropped.append({rule_name})",
            f"elif {emit.condition(when)}:",
            f"    added.append({rule_name})",
        ]
    body.append("return life, added, dropped")
    locals_ = [f"{local} = _U" for local in emit.slots.values()]
    source = "def judge(st, now, held):\n" + "".join(f"    {line}\n" for line in locals_ + body)
    exec(compile(source, "<rules judge>", "exec"), namespace)
    judge = namespace["judge"]
    judge.source = source  # for a person debugging a rule, and for the test that no file text is in it
    return judge
