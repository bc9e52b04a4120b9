"""`journey evaluate`: the at-risk decision and the churn score, checked against what the history shows next.

The history is replayed up to --at (the clock then advanced to --at). Every customer with at least
one purchase by then is labelled churned when the same file holds no purchase of theirs in
(at, at + horizon]. Beside the rules' decision (lifecycle at_risk or lapsed at --at) stand the plain
rules of `baselines.py`, and with --logistic a logistic model trained one horizon earlier
(`logistic.py`). Precision, recall and F1 judge each decision, ROC AUC each score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from streams.churn import baselines
from streams.churn.history import DAY, Cut, bgnbd_inputs
from streams.churn.metrics import Scores, scores
from streams.churn.reading import CommandError, before_first, parse_at, read_history, rules_model
from streams.core.instants import iso

AT_RISK = frozenset({"at_risk", "lapsed"})
#: The rows of the table and the keys of `--json`'s "methods", in this order.
METHODS = {
    "rules": "rules: at_risk|lapsed",
    "no_purchase_90d": "no purchase in 90 days",
    "gap_over_2x_interval": "gap > 2 x own interval",
    "logistic": "logistic",
}
#: The logistic model flags a customer at or above this P(churned).
LOGISTIC_THRESHOLD = 0.5


@dataclass
class Labelled:
    """The customers who bought by the cut, in a fixed order, and whether each churned."""

    ids: list[str]
    churned: np.ndarray
    cut: Cut


def labelled(cut: Cut) -> Labelled:
    ids = sorted(
        cid for cid, state in cut.states.items() if state.purchases >= 1 and state.last_purchase_at is not None
    )
    return Labelled(ids, np.array([cid not in cut.bought_after for cid in ids], dtype=bool), cut)


def evaluate(
    history_file: Path,
    mapping: str | None,
    at_text: str,
    horizon_days: float,
    rules: Path | None,
    churn_model: Path | None,
    with_logistic: bool,
) -> dict:
    """The figures `--json` prints (stable keys); raises CommandError on input the user must fix."""
    from streams.core.churn.bgnbd import churn_risk
    from streams.core.churn.modelfile import ChurnModelError, load_churn_model

    at = parse_at(at_text)
    if not (math.isfinite(horizon_days) and horizon_days > 0):
        raise CommandError(f"--horizon must be a positive number of days, not {horizon_days:g}")
    from streams.churn.logistic_file import kind_of, load_logistic

    logistic_file = None
    if churn_model is not None:
        try:  # first, so its error names the option
            if kind_of(churn_model) == "logistic":
                logistic_file = load_logistic(churn_model)
            else:
                load_churn_model(churn_model)
        except (ChurnModelError, OSError) as exc:
            raise CommandError(f"--churn-model: {exc}") from None
    if logistic_file is not None:
        if with_logistic:
            raise CommandError("--churn-model names a logistic model already: drop --logistic")
        if logistic_file.horizon_days != horizon_days:
            raise CommandError(
                f"--churn-model {logistic_file.name} was trained for a {logistic_file.horizon_days:g}-day horizon: "
                f"evaluate it with --horizon {logistic_file.horizon_days:g}, or fit one for {horizon_days:g} days"
            )
    core_model = rules_model(
        rules, churn_model if logistic_file is None else None, without_churn=logistic_file is not None
    )
    model = core_model.rules.churn  # --churn-model, else JOURNEY_CHURN_MODEL_FILE's
    first_rhythm = float(core_model.rules.spec.settings.first_rhythm_days)
    at_s, horizon_s = at.timestamp(), horizon_days * DAY
    cuts: list[tuple[float, float | None]] = [(at_s, horizon_s)]
    if with_logistic:
        cuts.append((at_s - horizon_s, horizon_s))
    history = read_history(history_file, mapping, core_model, cuts)
    assert history.first_event is not None and history.last_event is not None
    if at_s < history.first_event:
        raise before_first(history_file, at, history)
    if history.last_event < at_s + horizon_s:
        raise CommandError(
            f"{history_file.name} ends at {iso(history.last_event)}, before --at + --horizon "
            f"({iso(at_s + horizon_s)}): customers would be labelled churned for purchases the file cannot hold; "
            f"choose --at on or before {iso(history.last_event - horizon_s)} or a shorter --horizon"
        )
    now = labelled(history.cuts[0])
    if not now.ids:
        raise CommandError(f"no customer bought by --at {iso(at_s)}: nothing to label; choose a later --at")
    states = [now.cut.states[cid] for cid in now.ids]
    truth = now.churned
    risk = None
    if model is not None:
        risk = []
        for state in states:
            inputs = bgnbd_inputs(state, at_s)
            assert inputs is not None
            risk.append(churn_risk(model.params, *inputs, horizon_days))
    since = np.array([baselines.days_since_last_purchase(s, at_s) for s in states])
    ratio = np.array([baselines.gap_ratio(s, at_s, first_rhythm) for s in states])
    methods: dict[str, Scores | None] = {
        "rules": scores([s.lifecycle in AT_RISK for s in states], truth, risk),
        "no_purchase_90d": scores(since >= baselines.QUIET_DAYS, truth, since),
        "gap_over_2x_interval": scores(ratio > baselines.GAP_TIMES, truth, ratio),
        "logistic": None,
    }
    training = None
    if with_logistic:
        methods["logistic"], training = _logistic(history.cuts[1], states, truth, at_s, first_rhythm)
    elif logistic_file is not None:
        from streams.churn.logistic import features

        X = np.array([features(s, at_s, logistic_file.first_rhythm_days) for s in states])
        p = logistic_file.model.predict(X)
        methods["logistic"] = scores(p >= LOGISTIC_THRESHOLD, truth, p)
        training = {"model": logistic_file.label}
    one_time = sum(1 for s in states if s.purchases == 1)
    return {
        "history": history_file.name,
        "at": iso(at_s),
        "horizon_days": horizon_days,
        "rules": core_model.rules.source,  # the rules file's name
        "churn_model": (logistic_file.label if logistic_file is not None else None if model is None else model.label),
        "records": history.records,
        "not_events": history.rejected,
        "before_earliest_event_time": history.too_early,
        "customers": len(now.ids),
        "churned": int(truth.sum()),
        "churn_rate": float(truth.mean()),
        "one_purchase_customers": one_time,
        "one_purchase_interval_days": first_rhythm,
        "logistic_training": training,
        "methods": {name: None if got is None else got.as_dict() for name, got in methods.items()},
    }


def _logistic(earlier: Cut, states, truth, at_s: float, first_rhythm: float) -> tuple[Scores, dict]:
    from streams.churn.logistic import features, fit_logistic

    train = labelled(earlier)
    if len(train.ids) < 2 or train.churned.all() or not train.churned.any():
        raise CommandError(
            f"--logistic trains on the customers who bought by {iso(earlier.at)} (--at minus --horizon), and "
            f"{len(train.ids):,} did, not all of one outcome; choose a later --at or a shorter --horizon"
        )
    X = [features(earlier.states[cid], earlier.at, first_rhythm) for cid in train.ids]
    model = fit_logistic(X, train.churned, monotone=True)  # as `journey fit --kind logistic` trains it
    p = model.predict(np.array([features(s, at_s, first_rhythm) for s in states]))
    info = {"at": iso(earlier.at), "customers": len(train.ids), "churned": int(train.churned.sum())}
    return scores(p >= LOGISTIC_THRESHOLD, truth, p), info


def evaluate_command(
    history_file: Path,
    mapping: str | None,
    at_text: str,
    horizon_days: float,
    rules: Path | None,
    churn_model: Path | None,
    as_json: bool,
    with_logistic: bool = False,
) -> int:
    try:
        report = evaluate(history_file, mapping, at_text, horizon_days, rules, churn_model, with_logistic)
    except CommandError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return 0
    _print(report)
    return 0


def _figure(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _print(report: dict) -> None:
    console = Console()
    title = (
        f"{report['history']} at {report['at']}, horizon {report['horizon_days']:g} days: "
        f"{report['customers']:,} customers, {report['churned']:,} churned ({report['churn_rate']:.1%})"
    )
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("decision", "left"),
        ("flagged", "right"),
        ("precision", "right"),
        ("recall", "right"),
        ("F1", "right"),
        ("ROC AUC", "right"),
        ("ranked by", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    scored_by = {
        "rules": "churn_risk" if report["churn_model"] else "(no --churn-model)",
        "no_purchase_90d": "days since last purchase",
        "gap_over_2x_interval": "gap / own interval",
        "logistic": "P(churned)",
    }
    for key, label in METHODS.items():
        got = report["methods"][key]
        if got is None:
            continue
        table.add_row(
            label,
            f"{got['flagged']:,}",
            _figure(got["precision"]),
            _figure(got["recall"]),
            _figure(got["f1"]),
            _figure(got["auc"]),
            scored_by[key],
        )
    console.print(table)
    if report["churn_model"]:
        console.print(f"churn_risk over {report['horizon_days']:g} days, from {report['churn_model']}.")
    console.print(
        f"{report['one_purchase_customers']:,} customers bought once: the gap rule takes "
        f"{report['one_purchase_interval_days']:g} days (the rules' first_rhythm_days) as their interval."
    )
    if report["logistic_training"] and "model" in report["logistic_training"]:
        console.print(
            f"logistic model from {report['logistic_training']['model']} (P(churned) >= {LOGISTIC_THRESHOLD:g})."
        )
    elif report["logistic_training"]:
        t = report["logistic_training"]
        console.print(
            f"logistic model trained at {t['at']} on {t['customers']:,} customers ({t['churned']:,} churned)."
        )
