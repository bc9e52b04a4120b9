"""The `journey` command: run the worker, run the demo on the embedded local stack, create topics."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from streams.settings import Settings

if TYPE_CHECKING:
    from pydantic import ValidationError


class _Commands(click.Group):
    """The `journey` commands; invalid settings, or a Kafka that cannot be reached, end any of them with the
    reason, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from aiokafka.errors import KafkaConnectionError
            from pydantic import ValidationError

            from streams.kafka.security import KafkaSetupError
            from streams.text import printable

            if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
                _echo_settings_errors(exc)  # a command that read Settings() itself
            elif isinstance(exc, KafkaSetupError | KafkaConnectionError):
                reason = str(exc).removeprefix("KafkaConnectionError: ")
                click.echo(f"error: {printable(reason)}", err=True)  # the reason names settings, never their secrets
            else:
                raise
            ctx.exit(2)


@click.group(cls=_Commands)
def main() -> None:
    """Customer-journey stream processor."""


log = logging.getLogger(__name__)


@main.command()
@click.option(
    "--loglevel",
    "-l",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--engine",
    default="aiokafka",
    show_default=True,
    type=click.Choice(["aiokafka", "faust"]),
    help="aiokafka: the batch loop; faust: the Faust app (faust-streaming), as `faust -A streams.live.faust_app worker`.",
)
def worker(loglevel: str, engine: str) -> None:
    """Run the stream worker with the JOURNEY_* settings from the environment (Ctrl-C or SIGTERM stops it)."""
    settings = _settings_or_exit()
    if engine == "faust":
        try:
            import faust  # noqa: F401
        except ImportError:
            click.echo(
                "error: the faust engine needs faust-streaming: pip install 'journey-streams[faust]' "
                "(or pip install 'faust-streaming>=0.15.2')",
                err=True,
            )
            raise SystemExit(2) from None
        from streams.live.faust_app import run_faust_worker
        from streams.logs import setup_logging

        setup_logging(loglevel, settings.secrets(), settings.log_format)
        run_faust_worker(settings, loglevel)
        return
    from streams.live.worker import run_worker

    run_worker(settings, loglevel)


@main.command()
def topics() -> None:
    """Create the input and output topics that do not exist yet."""
    from streams.kafka.topics import ensure_topics

    created = asyncio.run(ensure_topics(_settings_or_exit()))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@main.command()
@click.argument("customer_ids", nargs=-1)
@click.option(
    "--file",
    "ids_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of customer ids, one a line (blank lines skipped).",
)
@click.option("--requested-by", default="journey-forget", show_default=True, help="Who asked: in the audit record.")
@click.option(
    "--wait",
    is_flag=True,
    help="Wait until the workers have applied every request (their partitions' commits passed it).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="With --wait: give up (exit code 1) after this many seconds.",
)
def forget(customer_ids: tuple[str, ...], ids_file: Path | None, requested_by: str, wait: bool, timeout: float) -> None:
    """Ask the workers to forget customers: one erasure request each on the input topic, keyed by the id.

    Keyed like the customer's own events, the request is applied in order with them and in the same
    atomic commit; every request is validated as an input event is, before anything is sent. With
    --wait the command returns once each request's partition has committed past it: the customer's
    keys are deleted then (the tombstones and audit record follow from the outbox).
    """
    import uuid
    from datetime import UTC, datetime

    from pydantic import ValidationError as EventError

    from schemas import TouchpointEvent
    from streams.kafka.clients import producer

    ids = list(customer_ids)
    if ids_file is not None:
        ids += [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise click.UsageError("give at least one CUSTOMER_ID, or --file")
    settings = _settings_or_exit()
    now = datetime.now(UTC).isoformat()
    requests = []
    for cid in ids:
        try:
            requests.append(
                TouchpointEvent.model_validate(
                    {
                        "event_id": f"erasure-{uuid.uuid4().hex}",
                        "customer_id": cid,
                        "occurred_at": now,
                        "stage": "post_purchase",
                        "touchpoint": "erasure_request",
                        "channel": "api",
                        "payload": {"kind": "erasure", "requested_by": requested_by},
                    }
                )
            )
        except EventError as exc:
            raise click.ClickException(f"not a valid erasure request for {cid!r}: {exc.errors()[0]['msg']}") from exc

    async def send() -> dict[int, int]:
        """Each partition's offset of its last request."""
        client = producer(settings)
        await client.start()
        last: dict[int, int] = {}
        try:
            for request in requests:
                sent = await client.send_and_wait(
                    settings.topic_touchpoints,
                    key=request.customer_id.encode(),
                    value=request.model_dump_json().encode(),
                )
                last[sent.partition] = max(last.get(sent.partition, -1), sent.offset)
        finally:
            await client.stop()
        return last

    last = asyncio.run(send())
    click.echo(f"{len(requests)} erasure request(s) sent to {settings.topic_touchpoints}")
    if wait:
        _wait_applied(settings, last, timeout)
        click.echo(f"applied: {len(requests)} erasure request(s)")


def _wait_applied(settings: Settings, last: dict[int, int], timeout: float) -> None:
    """Poll the partitions' marks (the last input offset each commit applied) until every one has passed
    the offset given for it, for at most `timeout` seconds (then exit code 1, naming what is left)."""
    import time

    import redis

    from streams.store import Keys, clients
    from streams.text import printable, redact

    keys = Keys.for_settings(settings)
    client = clients.sync_client(settings)
    deadline = time.monotonic() + timeout
    waiting = dict(last)
    try:
        while True:
            for partition, offset in list(waiting.items()):
                stored = _bytes(client.hget(keys.mark(partition), "offset"))
                if stored and int(stored) >= offset:
                    del waiting[partition]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                left = ", ".join(f"partition {p} (offset {o})" for p, o in sorted(waiting.items()))
                click.echo(f"not applied within {timeout:g} s: {left}; are the workers running?", err=True)
                sys.exit(1)
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    except redis.exceptions.RedisError as exc:
        raise click.ClickException(
            f"cannot read progress from Redis: {printable(redact(str(exc), settings.secrets()))}"
        ) from exc
    finally:
        client.close()


@main.command("advance-clock")
@click.option(
    "--until",
    "until",
    required=True,
    metavar="ISO_TIME",
    help="Move every input partition's event clock to this time (with a timezone, e.g. 2027-01-01T00:00:00Z).",
)
def advance_clock(until: str) -> None:
    """End a replay (JOURNEY_CLOCK=event): move each input partition's event clock to --until, never back.

    The worker's next sweep then fires every inactivity check due by then, as the offline replay's
    `--until` does. Run it after the worker has applied the replayed input.
    """
    from datetime import datetime

    from streams.replay.clock import advance_event_clock
    from streams.replay.command import parse_until

    at = parse_until(until)
    settings = _settings_or_exit()
    clocks = asyncio.run(advance_event_clock(settings, at.timestamp()))
    for partition, clock in clocks.items():
        moved = "" if clock == at.timestamp() else " (already later)"
        click.echo(
            f"{settings.topic_touchpoints}[{partition}]: clock {datetime.fromtimestamp(clock, at.tzinfo).isoformat()}{moved}"
        )


def _settings_or_exit() -> Settings:
    """The JOURNEY_* settings; invalid ones end the command naming each variable and what is wrong."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        _echo_settings_errors(exc)
        sys.exit(2)


def _echo_settings_errors(exc: ValidationError) -> None:
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"]:
            message = "JOURNEY_" + "_".join(str(part) for part in error["loc"]).upper() + ": " + message
        click.echo(message, err=True)  # never the value: it may be a secret (checks of several name theirs)


def _model_or_exit(settings: Settings):
    """The rules and playbook the settings name; a bad file ends the command with its message."""
    from streams.core.churn.modelfile import ChurnModelError
    from streams.core.money import CurrencyError
    from streams.core.playbook.playbook import PlaybookError
    from streams.core.rules.compiled import RulesError

    try:
        return settings.load_model()
    except (RulesError, PlaybookError, CurrencyError, ChurnModelError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _bytes(raw: bytes | str | None) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _input_partition_count(settings: Settings) -> int:
    """How many partitions the input topic has, as the broker says; `JOURNEY_PARTITIONS` if it cannot be asked."""
    from streams.kafka.topics import input_partitions

    async def ask() -> int:
        return len(await asyncio.wait_for(input_partitions(settings), 10))

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no event loop yet, so one can be run to ask
        pass
    else:  # called from inside an event loop (an embedding program): not asked
        return settings.partitions
    try:
        return asyncio.run(ask())
    except Exception as exc:  # no broker at hand: the setting is the best guess, every partition is still tried
        log.info("cannot ask Kafka for the input topic's partitions (%s); using JOURNEY_PARTITIONS", type(exc).__name__)
        return settings.partitions


def _customer_partition(settings: Settings, client, customer_id: str) -> int:
    """The input partition whose keys hold the customer (the default partitioner's first, then every other);
    the default partitioner's when none does."""
    from streams.kafka.publish import partition_for
    from streams.store import Keys
    from streams.store.lookup import find

    count = _input_partition_count(settings)
    guess = partition_for(customer_id.encode(), count)
    found = find(client, Keys.for_settings(settings), customer_id, guess, count)
    return guess if found is None else found


@main.command()
@click.argument("customer_id")
def explain(customer_id: str) -> None:
    """Why CUSTOMER_ID is what they are: types, rules that hold with evidence, changes, actions sent and suppressed.

    A customer whose stored state cannot be read is shown as quarantined: why, since when, what to do.
    """
    import redis
    from rich.console import Console

    from streams.explain import render_customer, render_quarantined, render_released_note
    from streams.store import Keys, Unreadable, clients
    from streams.store.history import read as read_history
    from streams.store.history import stored_entries
    from streams.store.journey import decode_state
    from streams.text import printable, redact

    settings = _settings_or_exit()
    model = _model_or_exit(settings)
    keys = Keys.for_settings(settings)
    client = clients.sync_client(settings)
    try:
        partition = _customer_partition(settings, client, customer_id)
        raw = _bytes(client.get(keys.state(partition, customer_id)))
        history = stored_entries(client, keys.history(partition, customer_id))
        record = {
            _text(k): _text(v)
            for k, v in client.hgetall(keys.quarantine(partition, customer_id)).items()
            if _text(k) != "state"
        }
    except redis.exceptions.RedisError as exc:
        why = printable(redact(str(exc), settings.secrets()))
        click.echo(f"cannot read from Redis at {settings.redis_shown} ({why}); check JOURNEY_REDIS_URL", err=True)
        sys.exit(2)
    finally:
        client.close()
    if raw is None and not record:
        click.echo(
            f"no customer {printable(repr(customer_id))} under key prefix {settings.key_prefix!r} "
            f"in {settings.redis_shown}",
            err=True,
        )
        sys.exit(1)
    state = None if raw is None else decode_state(raw)
    console = Console()
    if state is None or isinstance(state, Unreadable):
        topics = (settings.topic_touchpoints, settings.topic_dead_letter)
        reason = None if state is None else state.reason
        render_quarantined(console, customer_id, raw, reason, record, keys.state(partition, customer_id), topics)
        return
    render_customer(console, state, [read_history(h, customer_id) for h in history], model)
    if record:
        render_released_note(console, record)


@main.command()
@click.argument("customer_id")
@click.option(
    "--forget-state",
    is_flag=True,
    help="Also delete their unreadable state: the customer starts over with their next event (their history is lost).",
)
def release(customer_id: str, forget_state: bool) -> None:
    """End the quarantine of CUSTOMER_ID, whose stored state could not be read (see `journey explain`).

    With a state that reads again (repaired, or read by a newer version) it removes the quarantine
    record; with a state that still cannot be read, only --forget-state releases them.
    """
    import redis

    from streams.store import Keys, Unreadable, clients
    from streams.store.journey import decode_state
    from streams.text import printable, redact

    settings = _settings_or_exit()
    keys = Keys.for_settings(settings)
    client = clients.sync_client(settings)
    try:
        partition = _customer_partition(settings, client, customer_id)
        state_key, record_key = keys.state(partition, customer_id), keys.quarantine(partition, customer_id)
        raw = _bytes(client.get(state_key))
        had_record = bool(client.exists(record_key))
        bad = None if raw is None else decode_state(raw)
        if isinstance(bad, Unreadable):
            if not forget_state:
                click.echo(
                    f"the state of {customer_id!r} still cannot be read ({printable(bad.reason)}): repair it (write a corrected "
                    f"state to {state_key!r}), or run again with --forget-state to delete it (the customer then "
                    "starts over with their next event)",
                    err=True,
                )
                sys.exit(1)
            client.delete(state_key, record_key)
            click.echo(
                f"released {customer_id!r}: their unreadable state ({len(raw or b'')} bytes) and quarantine record "
                "were deleted; they start over with their next event"
            )
        elif had_record:
            client.delete(record_key)
            click.echo(f"released {customer_id!r}: their quarantine record was removed (their state reads)")
        else:
            click.echo(f"{customer_id!r} is not quarantined", err=True)
            sys.exit(1)
    except redis.exceptions.RedisError as exc:
        why = printable(redact(str(exc), settings.secrets()))
        click.echo(f"cannot reach Redis at {settings.redis_shown} ({why}); check JOURNEY_REDIS_URL", err=True)
        sys.exit(2)
    finally:
        client.close()


@main.command()
@click.option("--signals", is_flag=True, help="Also list every signal a rule may read.")
def types(signals: bool) -> None:
    """Every customer type with its rule and the nurture actions it triggers (JOURNEY_RULES_FILE, JOURNEY_PLAYBOOK_FILE)."""
    from rich.console import Console

    from streams.explain import render_types

    render_types(Console(), _model_or_exit(_settings_or_exit()), signals)


@main.command()
@click.option("--customers", type=int, default=None, help="Generate this many customers instead of the bundled sample.")
@click.option("--quiet", is_flag=True, help="Print only the summary, not each change and action.")
def demo(customers: int | None, quiet: bool) -> None:
    """Start a local broker and Redis, run the worker, feed sample journeys, print what happens."""
    from streams.local.demo import run_demo

    sys.exit(run_demo(customers=customers, quiet=quiet))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--mapping",
    metavar="NAME|PATH",
    default=None,
    help="Read a CSV / JSON Lines export through this mapping (a shipped mapping's name or a YAML file).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("replay-out"),
    metavar="DIR",
    show_default=True,
    help="Where changes.jsonl, actions.jsonl, holdouts.jsonl, dead-letters.jsonl, summary.json and transitions.svg "
    "are written.",
)
@click.option(
    "--until",
    metavar="ISO_TIME",
    default=None,
    help="After the last event, move the clock to this time (e.g. 2027-01-01T00:00:00Z), "
    "so inactivity after the last event applies.",
)
@click.option(
    "--now",
    metavar="ISO_TIME",
    default=None,
    help="Refuse events dated later than this plus JOURNEY_MAX_EVENT_AHEAD_S, as the worker refuses events "
    "ahead of its clock (default: --until; neither: no such bound).",
)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    default=None,
    help="Keep customer states in this Redis (keys replay:c:<id>, cleared first) instead of in memory.",
)
@click.option(
    "--compare",
    "golden_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    metavar="GOLDEN_DIR",
    help="Compare the outputs with the golden ones in this directory; exit code 1 when they differ.",
)
@click.option(
    "--to-kafka",
    is_flag=True,
    help="Produce the events to the input topic (JOURNEY_* settings) for the live worker, instead.",
)
@click.option(
    "--speedup",
    type=float,
    default=None,
    metavar="S",
    help="With --to-kafka: keep the events' spacing, this many times faster (default: as fast as possible).",
)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Classify with this rules file instead of JOURNEY_RULES_FILE (or the shipped one).",
)
@click.option(
    "--playbook",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Decide actions with this playbook instead of JOURNEY_PLAYBOOK_FILE (or the shipped one).",
)
@click.option(
    "--churn-model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Score the churn signals with this model file (`journey fit`) instead of JOURNEY_CHURN_MODEL_FILE.",
)
@click.option(
    "--currency",
    metavar="CODE",
    default=None,
    help="Keep spend in this currency (ISO 4217) instead of JOURNEY_CURRENCY (default EUR).",
)
@click.option(
    "--currency-rates",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Convert orders in other currencies with this rates file instead of JOURNEY_CURRENCY_RATES_FILE.",
)
def replay(
    file: Path,
    mapping: str | None,
    out_dir: Path,
    until: str | None,
    now: str | None,
    redis_url: str | None,
    golden_dir: Path | None,
    to_kafka: bool,
    speedup: float | None,
    rules: Path | None,
    playbook: Path | None,
    churn_model: Path | None,
    currency: str | None,
    currency_rates: Path | None,
) -> None:
    """Replay a recorded file of touchpoint events: offline through the core (default), or into Kafka.

    Offline, the same file always gives byte-identical outputs for the same rules and playbook.
    """
    from streams.replay.command import replay_command

    sys.exit(
        replay_command(
            file,
            mapping,
            out_dir,
            until,
            redis_url,
            golden_dir,
            to_kafka,
            speedup,
            rules,
            playbook,
            currency,
            currency_rates,
            now,
            churn_model,
        )
    )


@main.command("import")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--mapping",
    "mapping_ref",
    required=True,
    metavar="NAME_OR_PATH",
    help="A shipped mapping (orders, clickstream) or the path of a mapping YAML file.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the mapped events (JSON Lines).",
)
def import_(export: Path, mapping_ref: str, out: Path) -> None:
    """Turn a CSV / JSON Lines export into touchpoint events through a mapping file; report rejected rows.

    Exit code 0 even when rows were rejected (the report lists them), 2 when the mapping is invalid.
    """
    from streams.imports.command import import_command

    sys.exit(import_command(export, mapping_ref, out))


_HISTORY_HELP = "Read a CSV / JSON Lines export through this mapping (a shipped mapping's name or a YAML file)."


@main.command()
@click.argument("history", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", metavar="NAME|PATH", default=None, help=_HISTORY_HELP)
@click.option(
    "--at",
    "at",
    required=True,
    metavar="ISO_TIME",
    help="Fit on the events at or before this time (e.g. 2027-01-01T00:00:00Z); customers' ages run to it.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("churn-model.yaml"),
    show_default=True,
    help="The model file to write: JSON if the name ends in .json, YAML otherwise.",
)
@click.option(
    "--kind",
    type=click.Choice(["bgnbd", "logistic"]),
    default="bgnbd",
    show_default=True,
    help="bgnbd: the model the churn signals read; logistic: trained on features at --at minus --horizon and "
    "labels up to --at, for `journey evaluate --churn-model`.",
)
@click.option(
    "--horizon",
    type=float,
    default=90.0,
    show_default=True,
    metavar="DAYS",
    help="With --kind logistic: the horizon it predicts churn over.",
)
def fit(history: Path, mapping: str | None, at: str, out: Path, kind: str, horizon: float) -> None:
    """Fit the BG/NBD churn model on HISTORY up to --at and write the model file JOURNEY_CHURN_MODEL_FILE reads.

    Exit code 0, 1 when the fit did not converge (the file is written, with converged: false), 2 on bad input.
    """
    from streams.churn.fit_command import fit_command

    sys.exit(fit_command(history, mapping, at, out, kind, horizon))


@main.command()
@click.argument("history", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", metavar="NAME|PATH", default=None, help=_HISTORY_HELP)
@click.option(
    "--at", "at", required=True, metavar="ISO_TIME", help="Replay up to this time and judge every buyer there."
)
@click.option(
    "--horizon",
    type=float,
    default=90.0,
    show_default=True,
    metavar="DAYS",
    help="A buyer with no purchase in (--at, --at + DAYS] in the same file counts as churned.",
)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Decide at-risk with this rules file instead of JOURNEY_RULES_FILE (or the shipped one).",
)
@click.option(
    "--churn-model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A model file from `journey fit` instead of JOURNEY_CHURN_MODEL_FILE: the rules' churn signals read it, "
    "and its churn_risk over --horizon is the score ranked (ROC AUC).",
)
@click.option("--logistic", is_flag=True, help="Also train a logistic model one horizon earlier and judge it.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON (stable keys) instead of a table.")
def evaluate(
    history: Path,
    mapping: str | None,
    at: str,
    horizon: float,
    rules: Path | None,
    churn_model: Path | None,
    logistic: bool,
    as_json: bool,
) -> None:
    """Check the at-risk decision and the churn score on HISTORY: who bought again after --at, who did not.

    Prints precision, recall and F1 of the rules' at-risk decision (at_risk or lapsed at --at) and
    ROC AUC of churn_risk, beside the plain rules "no purchase in 90 days" and "gap above twice
    one's own interval". Exit code 2 on bad input.
    """
    from streams.churn.evaluate_command import evaluate_command

    sys.exit(evaluate_command(history, mapping, at, horizon, rules, churn_model, as_json, logistic))
