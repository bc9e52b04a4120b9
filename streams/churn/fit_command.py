"""`journey fit`: a churn model fitted on a history up to an instant, written as a model file.

Each customer's (x, t_x, T) is read from the state the core keeps after replaying the history up
to --at, the same fields the churn signals read, so the fit and the live score count purchases the
same way (every paid purchase event, refunds not subtracted).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from streams.churn.history import DAY, bgnbd_inputs
from streams.churn.reading import CommandError, before_first, parse_at, read_history, rules_model, skipped
from streams.core.instants import iso


def fit_command(
    history_file: Path, mapping: str | None, at_text: str, out: Path, kind: str = "bgnbd", horizon_days: float = 90.0
) -> int:
    """Returns the exit code: 0 fitted, 1 written but the optimiser did not converge, 2 bad input."""
    from streams.core.churn.fit import fit_bgnbd
    from streams.core.churn.modelfile import to_document, write_model

    try:
        at = parse_at(at_text)
        if out.is_dir():
            raise CommandError(f"--out {out} is a directory; give a file name such as {out / 'churn-model.yaml'}")
        if kind == "logistic":
            return fit_logistic_command(history_file, mapping, at, out, horizon_days)
        started = time.perf_counter()
        history = read_history(history_file, mapping, rules_model(None, without_churn=True), [(at.timestamp(), None)])
        read_s = time.perf_counter() - started
        if history.first_event is not None and at.timestamp() < history.first_event:
            raise before_first(history_file, at, history)
        rows = [r for s in history.cuts[0].states.values() if (r := bgnbd_inputs(s, at.timestamp())) is not None]
        if not rows:
            raise CommandError(
                f"no customer of {history_file.name} bought by --at {iso(at.timestamp())}: choose a later --at "
                "(purchases are events with touchpoint purchase and an order payload)"
            )
        x, t_x, T = (np.array(column, dtype=float) for column in zip(*rows, strict=True))
        if len(x) < 2 or not (x > 0).any():
            raise CommandError(
                f"{len(x):,} customer(s) bought by --at {iso(at.timestamp())} and none of them twice: BG/NBD learns "
                "from repeat purchases; choose a later --at or a longer history"
            )
        started = time.perf_counter()
        fit = fit_bgnbd(x, t_x, T)
        fit_s = time.perf_counter() - started
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_model(out, to_document(fit, str(history_file), len(x), at))
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    except CommandError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    console = Console()
    table = Table(title=f"BG/NBD fitted on {history_file.name} up to {iso(at.timestamp())}", title_justify="left")
    table.add_column("", justify="left")
    table.add_column("value", justify="right")
    p = fit.params
    for name, value in (
        ("r (purchase rate shape)", f"{p.r:.6g}"),
        ("alpha (rate scale, days)", f"{p.alpha:.6g}"),
        ("a (dropout shape)", f"{p.a:.6g}"),
        ("b (dropout shape)", f"{p.b:.6g}"),
        ("log-likelihood", f"{fit.log_likelihood:,.3f}"),
        ("converged", "yes" if fit.converged else f"no ({fit.message})"),
        ("customers (bought by --at)", f"{len(x):,}"),
        ("of them bought again", f"{int((x > 0).sum()):,}"),
        ("records read", f"{history.records:,}" + skipped(history)),
        ("seconds: read and replay", f"{read_s:.2f}"),
        ("seconds: fit", f"{fit_s:.2f}"),
    ):
        table.add_row(name, value)
    console.print(table)
    console.print(f"wrote {out}")
    if not fit.converged:
        click.echo(
            f"warning: the optimiser did not converge ({fit.message}); check the figures before using {out}", err=True
        )
        return 1
    return 0


def fit_logistic_command(history_file: Path, mapping: str | None, at, out: Path, horizon_days: float) -> int:
    """`--kind logistic`: features at --at minus the horizon, labels from the purchases up to --at."""
    from streams.churn.evaluate_command import labelled
    from streams.churn.logistic import FEATURES, features, fit_logistic
    from streams.churn.logistic_file import to_document
    from streams.core.churn.modelfile import write_model

    if not (np.isfinite(horizon_days) and horizon_days > 0):
        raise CommandError(f"--horizon must be a positive number of days, not {horizon_days:g}")
    started = time.perf_counter()
    model = rules_model(None, without_churn=True)
    first_rhythm = float(model.rules.spec.settings.first_rhythm_days)
    cut = at.timestamp() - horizon_days * DAY
    history = read_history(history_file, mapping, model, [(cut, horizon_days * DAY)])
    read_s = time.perf_counter() - started
    train = labelled(history.cuts[0])
    if len(train.ids) < 2 or train.churned.all() or not train.churned.any():
        raise CommandError(
            f"the logistic model learns from the customers who bought by {iso(cut)} (--at minus --horizon) and "
            f"whether they bought again by --at; {len(train.ids):,} did, not of both outcomes: choose a later --at "
            "or a shorter --horizon"
        )
    if history.last_event is not None and history.last_event < at.timestamp():
        click.echo(
            f"warning: {history_file.name} ends at {iso(history.last_event)}, before --at: the quiet months after "
            "it count as churn in training",
            err=True,
        )
    started = time.perf_counter()
    X = np.array([features(history.cuts[0].states[c], cut, first_rhythm) for c in train.ids])
    fitted = fit_logistic(X, train.churned, monotone=True)
    p = np.clip(fitted.predict(X), 1e-12, 1 - 1e-12)
    y = train.churned
    log_loss = float(-(y * np.log(p) + (~y) * np.log(1 - p)).mean())
    fit_s = time.perf_counter() - started
    from datetime import UTC, datetime

    document = to_document(
        fitted, str(history_file), at, datetime.fromtimestamp(cut, UTC), horizon_days, first_rhythm, y, log_loss
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_model(out, document)
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    table = Table(
        title=f"logistic churn model on {history_file.name}: features at {iso(cut)}, labels to {iso(at.timestamp())}",
        title_justify="left",
    )
    table.add_column("", justify="left")
    table.add_column("value", justify="right")
    table.add_row("intercept", f"{fitted.weights[0]:+.4f}")
    for name, w in zip(FEATURES, fitted.weights[1:], strict=True):
        table.add_row(f"weight: {name} (standardised)", f"{w:+.4f}")
    for name, value in (
        ("horizon (days)", f"{horizon_days:g}"),
        ("log loss (training)", f"{log_loss:.4f}"),
        ("converged", "yes" if fitted.converged else "no"),
        ("customers (bought by the feature cut)", f"{len(y):,}"),
        ("of them churned", f"{int(y.sum()):,}"),
        ("records read", f"{history.records:,}" + skipped(history)),
        ("seconds: read and replay", f"{read_s:.2f}"),
        ("seconds: fit", f"{fit_s:.2f}"),
    ):
        table.add_row(name, value)
    Console().print(table)
    Console().print(f"wrote {out}")
    return 0 if fitted.converged else 1
