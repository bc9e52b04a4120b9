"""`journey replay`: what the command does, apart from its options (which live in streams/cli.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any, overload

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from streams.settings import Settings


@overload
def parse_until(until: str, option: str = ...) -> datetime: ...
@overload
def parse_until(until: None, option: str = ...) -> None: ...
@overload
def parse_until(until: str | None, option: str = ...) -> datetime | None: ...


def parse_until(until: str | None, option: str = "--until") -> datetime | None:
    """`--until` (or another time option) as an aware datetime; a time without a timezone is refused,
    as event times are."""
    if until is None:
        return None
    try:
        at = datetime.fromisoformat(until)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {until!r}", param_hint=option) from exc
    if at.tzinfo is None:
        raise click.BadParameter(f"{until!r} has no timezone (add Z or +00:00)", param_hint=option)
    return at


def replay_command(
    file: Path,
    mapping: str | None,
    out_dir: Path,
    until: str | None,
    redis_url: str | None,
    golden_dir: Path | None,
    to_kafka: bool,
    speedup: float | None,
    rules: Path | None = None,
    playbook: Path | None = None,
    currency: str | None = None,
    currency_rates: Path | None = None,
    now: str | None = None,
    churn_model: Path | None = None,
) -> int:
    """Run the replay the options ask for; returns the exit code."""
    from streams.replay.sources import iter_records

    at = parse_until(until)
    now_at = parse_until(now, "--now")
    offline_only = (golden_dir, redis_url, at, now_at, rules, playbook, currency, currency_rates, churn_model)
    if to_kafka and any(offline_only):
        raise click.UsageError(
            "--to-kafka produces the events for the live worker; --compare, --redis, --until, --now, --rules, "
            "--playbook, --currency, --currency-rates and --churn-model apply to the offline replay only"
        )
    if speedup is not None and not to_kafka:
        raise click.UsageError("--speedup paces --to-kafka; the offline replay always runs at full speed")
    if speedup is not None and speedup <= 0:
        raise click.BadParameter("must be positive", param_hint="--speedup")
    model = None
    if not to_kafka:
        try:  # first: a bad rules or playbook file stops the replay before it reads anything
            model = _model(rules, playbook, currency, currency_rates, churn_model)
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            return 2
    mapping_errors: tuple[type[Exception], ...] = ()
    if mapping is not None:
        from streams.imports.mapping import MappingError

        mapping_errors = (MappingError,)
    try:
        source = iter_records(file, mapping)
        if to_kafka:
            return _to_kafka(source, speedup)
        return _offline(source, model, out_dir, at, redis_url, golden_dir, now_at)
    except mapping_errors as exc:  # the importer names the mapping's line and field
        click.echo(f"error: {exc}", err=True)
        return 2


def _model(
    rules: Path | None,
    playbook: Path | None,
    currency: str | None = None,
    currency_rates: Path | None = None,
    churn_model: Path | None = None,
):
    """The rules, playbook, churn model and money settings of the JOURNEY_* settings, or of --rules / --playbook /
    --currency / --currency-rates / --churn-model: the worker's settings, so a replay gives what the worker gives."""
    given = (
        ("rules_file", rules),
        ("playbook_file", playbook),
        ("currency", currency),
        ("currency_rates_file", currency_rates),
        ("churn_model_file", churn_model),
    )
    overrides: dict[str, Any] = {name: value for name, value in given if value}
    return Settings.model_validate(overrides).load_model()


def _offline(
    source,
    model,
    out_dir: Path,
    at: datetime | None,
    redis_url: str | None,
    golden_dir: Path | None,
    now: datetime | None = None,
) -> int:
    from streams.replay.golden import compare, print_diff
    from streams.replay.run import run_replay

    console, status = Console(), Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[records]:,} records"),
    )
    with Progress(*columns, console=status, transient=False) as bar:
        task = bar.add_task(f"replaying {source.path.name}", total=source.size, records=0)
        report = run_replay(
            source,
            model,
            until=at,
            out_dir=out_dir,
            redis_url=redis_url,
            progress=lambda done: bar.update(task, completed=source.bytes_read, records=done),
            now=now,
            guard=Settings().time_guard(),
            redis_cluster=Settings().redis_cluster,
        )
        bar.update(task, completed=source.size, records=report.records)
    report.print(console)
    console.print(
        f"wrote {', '.join(sorted(p.name for p in out_dir.iterdir() if p.is_file()))} to {out_dir}/"
        f" (open {out_dir / 'transitions.svg'} for the chart)"
    )
    if golden_dir is None:
        return 0
    console.print(f"\n[bold]compared with {golden_dir}[/]")
    try:
        diff = compare(out_dir, golden_dir)
    except FileNotFoundError as exc:
        click.echo(f"error: cannot compare: {exc}", err=True)
        return 2
    return print_diff(diff, echo=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))


def _to_kafka(source, speedup: float | None) -> int:
    try:
        from streams.replay.to_kafka import replay_to_kafka
    except ImportError as exc:
        raise click.ClickException(f"--to-kafka is not available: {exc}") from exc

    settings = Settings()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        result = asyncio.run(replay_to_kafka(source, settings, speedup, bar))
    elapsed = getattr(result, "elapsed_s", getattr(result, "elapsed", 0.0))
    click.echo(
        f"produced {result.produced} events to {settings.topic_touchpoints} on {settings.kafka_bootstrap}"
        f" in {elapsed:.1f}s; {result.rejected} records rejected (not events)"
    )
    return 0
