"""`journey import`: an export through a mapping file into touchpoint events, with a report of every row."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from streams.imports.mapping import ImportCounts, MappingError, iter_mapped, load_mapping, resolve_mapping


def import_command(export: Path, mapping_ref: str, out: Path) -> int:
    """Write the mapped events to `out` (through a `.part` file, so a failed run leaves no half file);
    print the report. Returns the exit code: 0, or 2 when the mapping is invalid."""
    counts, size, partial = ImportCounts(), export.stat().st_size, out.with_name(out.name + ".part")
    status = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=status,
        transient=True,
        disable=not status.is_terminal or size < 1 << 20,
    )
    try:
        mapping = load_mapping(resolve_mapping(mapping_ref))
        with progress, partial.open("w", encoding="utf-8") as fh:
            task = progress.add_task(export.name, total=size)
            for record in iter_mapped(export, mapping, counts):
                if record.event is not None:
                    fh.write(record.event.model_dump_json(by_alias=True, exclude_none=True) + "\n")
                if counts.rows % 4096 == 0:
                    progress.update(task, completed=counts.bytes_read)
        partial.replace(out)
    except MappingError as exc:
        partial.unlink(missing_ok=True)
        click.echo(f"error: {exc}", err=True)
        return 2
    Console().print(_report(counts, export, out))
    return 0


def _report(counts: ImportCounts, export: Path, out: Path) -> Table:
    table = Table(title=f"{export.name} → {out.name}", title_justify="left")
    table.add_column("rows", justify="left")
    table.add_column("count", justify="right")
    table.add_column("example lines / first reason", justify="left")
    ignored = ", ".join(f"{value} ×{n}" for value, n in counts.ignored_values.most_common())
    for label, n, detail in (
        ("read", counts.rows, ""),
        ("mapped", counts.mapped, f"written to {out}"),
        ("ignored", counts.ignored, ignored),
        ("rejected", counts.rejected_total, ""),
    ):
        table.add_row(label, str(n), Text(detail))
    for reason, n in counts.rejected.most_common():
        examples = counts.examples[reason]
        lines = ", ".join(map(str, examples)) + (", …" if n > len(examples) else "")
        table.add_row(
            Text(f"  {reason}"), str(n), Text(f"line{'s' if n > 1 else ''} {lines}\ne.g. {counts.first_detail[reason]}")
        )
    return table
