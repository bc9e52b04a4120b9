"""What `journey fit` and `journey evaluate` share: the history read with a progress bar, and errors in words.

The history is read as `journey replay` reads it (`streams/replay/sources.py`): JSON Lines of events,
or any export through a mapping. A problem the user can fix ends the command with exit code 2 and a
sentence saying what to do (`CommandError`), never a traceback.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from streams.churn.history import History, replay_to
from streams.core.instants import iso
from streams.core.model import Model


class CommandError(Exception):
    """A problem with the command's input, in words that say what to do (exit code 2)."""


def parse_at(value: str, option: str = "--at") -> datetime:
    from datetime import datetime as dt

    try:
        at = dt.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} {value!r} is not an ISO 8601 time; give one like 2027-01-01T00:00:00Z") from None
    if at.tzinfo is None:
        raise CommandError(f"{option} {value!r} has no timezone; add Z or +00:00, e.g. {value}Z")
    return at


def rules_model(rules: Path | None, churn: Path | None = None, *, without_churn: bool = False) -> Model:
    """The rules, playbook, churn model and money settings of the JOURNEY_* settings (what the worker uses),
    with `rules` and `churn` (a model file) in place of JOURNEY_RULES_FILE and JOURNEY_CHURN_MODEL_FILE;
    `without_churn`: no churn model at all (a fit reads purchases only, and may be replacing that file)."""
    from typing import Any

    from streams.settings import Settings

    overrides: dict[str, Any] = {
        name: value for name, value in (("rules_file", rules), ("churn_model_file", churn)) if value
    }
    if without_churn:
        overrides["churn_model_file"] = None
    try:
        return Settings.model_validate(overrides).load_model()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def read_history(
    file: Path, mapping: str | None, model: Model, cuts: list[tuple[float, float | None]], quiet: bool = False
) -> History:
    """Replay `file` up to each cut (see `replay_to`), with a progress bar on stderr for a long history."""
    from streams.replay.sources import iter_records
    from streams.settings import Settings

    try:
        source = iter_records(file, mapping)
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}; check the path and its permissions") from None
    except ValueError as exc:  # a mapping that cannot be used names its line and field
        raise CommandError(str(exc)) from None
    status = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[records]:,} records"),
        console=status,
        transient=True,
        disable=quiet or not status.is_terminal or source.size < 1 << 20,
    )
    try:
        with progress:
            task = progress.add_task(f"reading {file.name}", total=source.size, records=0)
            history = replay_to(
                source,
                model,
                cuts,
                Settings().time_guard(),
                lambda done: progress.update(task, completed=source.bytes_read, records=done),
            )
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}; check the path and its permissions") from None
    except UnicodeDecodeError:
        raise CommandError(
            f"{file} is not text (UTF-8): give an event JSON Lines file, or a CSV with --mapping"
        ) from None
    except ValueError as exc:  # the mapping importer's errors (MappingError) name the line and field
        raise CommandError(str(exc)) from None
    if history.first_event is None and history.too_early:
        raise CommandError(
            f"all {history.too_early:,} events of {file.name} are dated before JOURNEY_EARLIEST_EVENT_TIME "
            f"({iso(history.earliest)}); for an older history set it earlier, e.g. JOURNEY_EARLIEST_EVENT_TIME=1990-01-01T00:00:00Z"
        )
    if history.first_event is None:
        hint = " (a CSV or JSON export needs --mapping)" if mapping is None else ""
        if not history.records:
            raise CommandError(f"{file} holds no event{hint}")
        raise CommandError(f"none of the {history.records:,} records of {file} is an event{hint}")
    return history


def before_first(file: Path, at: datetime, history: History) -> CommandError:
    assert history.first_event is not None
    return CommandError(
        f"--at {iso(at.timestamp())} is before the first event of {file.name} ({iso(history.first_event)}): "
        "nothing to learn from; choose a later --at"
    )


def skipped(history: History) -> str:
    """What was read but not replayed, for the summary ("" when nothing)."""
    parts = [f"{history.rejected:,} not events"] if history.rejected else []
    if history.too_early:
        parts.append(f"{history.too_early:,} before JOURNEY_EARLIEST_EVENT_TIME")
    return f" ({', '.join(parts)})" if parts else ""
