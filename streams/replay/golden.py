"""Comparing a replay's outputs with golden ones, per customer, in words a reviewer can check.

A golden run is a reviewed `changes.jsonl` + `actions.jsonl`. After a rule or threshold
change, the question is not "do the files differ" but "whose journey changed, and how":
which customers gained or lost a lifecycle step, whose final type moved, which actions
appeared or vanished. Memory grows with customers, not lines: a first pass keeps one digest
per customer, a second reads back the lines of the customers that differ.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path

from streams.replay.report import label, ordered_types

FILES = ("changes.jsonl", "actions.jsonl")


@dataclass(frozen=True, order=True)
class Step:
    """One output line of a customer, for display: a lifecycle (or trait) change, or an action."""

    at: str
    text: str
    line: str = field(compare=False, repr=False)


@dataclass
class CustomerDiff:
    customer_id: str
    added: list[Step] = field(default_factory=list)  # changes now, not in golden
    removed: list[Step] = field(default_factory=list)  # changes in golden, not now
    final_now: str | None = None
    final_golden: str | None = None
    reordered: bool = False  # the same changes, in another order


@dataclass
class ActionDiff:
    customer_id: str
    action: str
    step: Step
    added: bool  # True: sent now, not in golden; False: in golden, not sent now


@dataclass
class GoldenDiff:
    """What differs between a run and its golden outputs; empty lists mean the same outputs."""

    customers: list[CustomerDiff] = field(default_factory=list)
    actions: list[ActionDiff] = field(default_factory=list)
    final_counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # type -> (golden, now)
    reordered_files: list[str] = field(default_factory=list)  # same per customer, other global order

    @property
    def same(self) -> bool:
        return not (self.customers or self.actions or self.reordered_files)

    @property
    def exit_code(self) -> int:
        return 0 if self.same else 1

    @property
    def final_type_changed(self) -> list[CustomerDiff]:
        return [c for c in self.customers if c.final_now != c.final_golden]

    @property
    def changed_per_type(self) -> Counter[str]:
        """Lifecycle type or trait -> customers with a differing step into or out of it."""
        per_type: Counter[str] = Counter()
        for c in self.customers:
            per_type.update({t for s in c.added + c.removed for t in _types_of(s.line) if t})
        return per_type

    @property
    def actions_added(self) -> Counter[str]:
        return Counter(a.action for a in self.actions if a.added)

    @property
    def actions_removed(self) -> Counter[str]:
        return Counter(a.action for a in self.actions if not a.added)

    def lines(self, limit: int | None = None) -> list[str]:
        """The diff in words, in a stable order; at most `limit` customers in detail."""
        if self.same:
            return ["same as golden: no customer's changes or actions differ"]
        out: list[str] = []
        by_customer = {c.customer_id: c for c in self.customers}
        actions_of: dict[str, list[ActionDiff]] = {}
        for a in self.actions:
            actions_of.setdefault(a.customer_id, []).append(a)
        everyone = sorted(by_customer.keys() | actions_of.keys())
        for cid in everyone if limit is None else everyone[:limit]:
            c = by_customer.get(cid)
            if c is not None:
                out += [f"{cid}: {text}" for _, text in _describe_steps(c.removed, c.added)]
                if c.reordered:
                    out.append(f"{cid}: the same changes in another order")
                if c.final_now != c.final_golden:
                    out.append(f"{cid}: final type {label(c.final_now)} (golden: {label(c.final_golden)})")
            acts = actions_of.get(cid, [])
            removed = [a.step for a in acts if not a.added]
            added = [a.step for a in acts if a.added]
            out += [f"{cid}: {text}" for _, text in _describe_actions(removed, added)]
        if limit is not None and len(everyone) > limit:
            out.append(f"… and {len(everyone) - limit} more customers")
        out.append("")
        out.append(
            f"lifecycle paths differ for {len(self.customers)} customers "
            f"({sum(len(c.added) for c in self.customers)} changes not in golden, "
            f"{sum(len(c.removed) for c in self.customers)} in golden only); "
            f"final type differs for {len(self.final_type_changed)}"
        )
        per_type = self.changed_per_type
        if per_type:
            out.append(
                "changed customers per type: " + ", ".join(f"{t} {per_type[t]}" for t in ordered_types(per_type))
            )
        moved = {t: v for t, v in self.final_counts.items() if v[0] != v[1]}
        if moved:
            out.append(
                "customers per final type (golden → now): " + ", ".join(f"{t} {g} → {n}" for t, (g, n) in moved.items())
            )
        sent, unsent = self.actions_added, self.actions_removed
        if sent or unsent:
            out.append(
                f"actions: {sum(sent.values())} added, {sum(unsent.values())} removed ("
                + ", ".join(f"{name} +{sent[name]} -{unsent[name]}" for name in sorted(sent | unsent))
                + ")"
            )
        for name in self.reordered_files:
            out.append(f"{name}: the same lines per customer, in another order across customers")
        return out


def compare(out_dir: str | Path, golden_dir: str | Path) -> GoldenDiff:
    """The per-customer difference between a run's outputs (`out_dir`) and the golden ones."""
    out_dir, golden_dir = Path(out_dir), Path(golden_dir)
    for directory in (out_dir, golden_dir):
        for name in FILES:
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} does not exist")
    diff = GoldenDiff()
    now_c, golden_c = _digests(out_dir / FILES[0]), _digests(golden_dir / FILES[0])
    now_a, golden_a = _digests(out_dir / FILES[1]), _digests(golden_dir / FILES[1])

    finals_now = Counter(d.final for d in now_c.values() if d.final)
    finals_golden = Counter(d.final for d in golden_c.values() if d.final)
    diff.final_counts = {t: (finals_golden[t], finals_now[t]) for t in ordered_types(finals_now | finals_golden)}

    changed = sorted(c for c in now_c.keys() | golden_c.keys() if now_c.get(c) != golden_c.get(c))
    if changed:
        lines_now = _lines_of(out_dir / FILES[0], set(changed))
        lines_golden = _lines_of(golden_dir / FILES[0], set(changed))
        for cid in changed:
            now, golden = lines_now.get(cid, []), lines_golden.get(cid, [])
            c = CustomerDiff(
                cid,
                [_step(x) for x in _minus(now, golden)],
                [_step(x) for x in _minus(golden, now)],
                final_now=_final(now_c.get(cid)),
                final_golden=_final(golden_c.get(cid)),
            )
            c.reordered = not c.added and not c.removed
            diff.customers.append(c)

    changed_a = sorted(c for c in now_a.keys() | golden_a.keys() if now_a.get(c) != golden_a.get(c))
    if changed_a:
        lines_now = _lines_of(out_dir / FILES[1], set(changed_a))
        lines_golden = _lines_of(golden_dir / FILES[1], set(changed_a))
        for cid in changed_a:
            now, golden = lines_now.get(cid, []), lines_golden.get(cid, [])
            for line, added in [(x, True) for x in _minus(now, golden)] + [(x, False) for x in _minus(golden, now)]:
                diff.actions.append(ActionDiff(cid, json.loads(line)["action"], _step(line), added))
        diff.actions.sort(key=lambda a: (a.customer_id, a.step.at, not a.added, a.action))

    if not diff.customers and not diff.actions:
        diff.reordered_files = [name for name in FILES if not _same_bytes(out_dir / name, golden_dir / name)]
    return diff


def _pair(removed: list[Step], added: list[Step], key) -> tuple[list[tuple[Step, Step]], list[Step], list[Step]]:
    """Match each removed step with the first unmatched added one of the same key (time order)."""
    pairs, lone_added = [], sorted(added)
    lone_removed = []
    for r in sorted(removed):
        match = next((a for a in lone_added if key(a) == key(r)), None)
        if match is None:
            lone_removed.append(r)
        else:
            lone_added.remove(match)
            pairs.append((r, match))
    return pairs, lone_removed, lone_added


def _change_key(step: Step) -> tuple:
    msg = json.loads(step.line)
    cause = "inactivity" if msg["caused_by"].startswith("inactivity@") else msg["caused_by"]
    return msg["dimension"], msg.get("from"), msg.get("to"), cause


def _describe_steps(removed: list[Step], added: list[Step]) -> list[tuple[str, str]]:
    """(time, text) per difference: a step that only moved or changed its evidence is one line."""
    pairs, lone_removed, lone_added = _pair(removed, added, _change_key)
    out = [(s.at, f"{s.text} — in golden, not now") for s in lone_removed]
    out += [(s.at, f"{s.text} — not in golden") for s in lone_added]
    for old, new in pairs:
        a, b = json.loads(old.line), json.loads(new.line)
        head = f"{label(a.get('from'))} → {label(a.get('to'))}"
        what = ", ".join(_differences(a, b))
        if old.at == new.at:
            out.append((new.at, f"{head} at {_when(new.at)}: {what}"))
        else:
            was, now = _when(old.at), _when(new.at)
            if was == now:  # the same minute: show the instants in full
                was, now = old.at, new.at
            out.append((new.at, f"{head} moved from {was} (golden) to {now}" + (f": {what}" if what else "")))
    return sorted(out)


def _differences(golden: dict, now: dict) -> list[str]:
    """What differs between two versions of one change, besides its time: rule, evidence, cause, id."""
    out = []
    ra, rb = golden.get("reason") or {}, now.get("reason") or {}
    if ra.get("rule") != rb.get("rule"):
        out.append(f"rule {ra.get('rule')} → {rb.get('rule')}")
    ea, eb = ra.get("evidence") or {}, rb.get("evidence") or {}
    out += [f"{k} {ea.get(k)} → {eb.get(k)}" for k in dict.fromkeys([*ea, *eb]) if ea.get(k) != eb.get(k)]
    if golden.get("caused_by") != now.get("caused_by") and not str(now.get("caused_by")).startswith("inactivity@"):
        out.append(f"caused by {golden.get('caused_by')} → {now.get('caused_by')}")
    derived = ("change_id",) if golden.get("caused_by") != now.get("caused_by") else ()  # an id follows its cause
    rest = [
        k
        for k in dict.fromkeys([*golden, *now])
        if k not in ("reason", "caused_by", "at", "from", "to", *derived) and golden.get(k) != now.get(k)
    ]
    if rest:
        out.append(f"{', '.join(rest)} differ")
    return out


def _describe_actions(removed: list[Step], added: list[Step]) -> list[tuple[str, str]]:
    pairs, lone_removed, lone_added = _pair(removed, added, lambda s: json.loads(s.line)["action"])
    out = [(s.at, f"-{s.text} — in golden, not now") for s in lone_removed]
    out += [(s.at, f"+{s.text} — not in golden") for s in lone_added]
    for old, new in pairs:
        name = json.loads(new.line)["action"]
        was, now = _when(old.at), _when(new.at)
        if was == now:
            was, now = old.at, new.at
        out.append(
            (
                new.at,
                f"{name} moved from {was} (golden) to {now}"
                if old.at != new.at
                else f"{name} at {now}: its ids or parameters differ",
            )
        )
    return sorted(out)


def _when(at: str) -> str:
    return at[:16].replace("T", " ")


def print_diff(diff: GoldenDiff, echo: Callable[[str], None] = print, limit: int | None = 50) -> int:
    """Print the diff; returns the exit code (0 same, 1 different)."""
    for line in diff.lines(limit):
        echo(line)
    return diff.exit_code


# ----------------------------------------------------------------------------- reading


@dataclass(eq=True)
class _Digest:
    """One customer's lines in one file, reduced to a digest (and their final lifecycle type)."""

    hash: bytes = b""
    final: str | None = None


def _records(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.strip():
                yield line, json.loads(line)


def _digests(path: Path) -> dict[str, _Digest]:
    out: dict[str, _Digest] = {}
    for line, msg in _records(path):
        d = out.setdefault(msg["customer_id"], _Digest())
        d.hash = blake2b(d.hash + line.encode(), digest_size=16).digest()
        if msg.get("dimension") == "lifecycle":
            d.final = msg["to"]
    return out


def _lines_of(path: Path, customers: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line, msg in _records(path):
        if msg["customer_id"] in customers:
            out.setdefault(msg["customer_id"], []).append(line)
    return out


def _minus(a: list[str], b: list[str]) -> list[str]:
    """The lines of `a` not in `b` (as multisets), in `a`'s order."""
    left = Counter(b)
    out = []
    for line in a:
        if left[line]:
            left[line] -= 1
        else:
            out.append(line)
    return out


def _final(d: _Digest | None) -> str | None:
    return None if d is None else d.final


def _types_of(line: str) -> tuple[str | None, str | None]:
    msg = json.loads(line)
    return msg.get("from"), msg.get("to")


def _step(line: str) -> Step:
    """A change as `loyal → at_risk at 2026-05-01 10:00 (lifecycle.at_risk: k=v, …)`, an action as its name."""
    msg = json.loads(line)
    at = msg.get("at", "")
    when = _when(at)
    if "action" in msg:
        return Step(
            at, f"{msg['action']} via {msg.get('channel')} at {when} (triggered by {msg.get('triggered_by')})", line
        )
    reason = msg.get("reason") or {}
    evidence = ", ".join(f"{k}={v}" for k, v in (reason.get("evidence") or {}).items() if v is not None)
    dimension = "" if msg.get("dimension") == "lifecycle" else f"{msg.get('dimension')} "
    return Step(
        at,
        f"{dimension}{label(msg.get('from'))} → {label(msg.get('to'))} at {when} ({reason.get('rule')}: {evidence})",
        line,
    )


def _same_bytes(a: Path, b: Path, size: int = 1 << 20) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(size), fb.read(size)
            if x != y:
                return False
            if not x:
                return True
