"""The `journey` command: run the worker, run the demo on the embedded local stack, create topics."""

from __future__ import annotations

import asyncio
import sys

import click

from streams.settings import Settings


@click.group()
def main() -> None:
    """Customer-journey stream processor."""


@main.command()
@click.option("--loglevel", "-l", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def worker(loglevel: str) -> None:
    """Run the stream worker with the JOURNEY_* settings from the environment (Ctrl-C or SIGTERM stops it)."""
    from streams.worker import run_worker

    run_worker(Settings(), loglevel)


@main.command()
def topics() -> None:
    """Create the input and output topics that do not exist yet."""
    from streams.topics import ensure_topics

    created = asyncio.run(ensure_topics(Settings()))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@main.command()
@click.option("--customers", type=int, default=None, help="Generate this many customers instead of the bundled sample.")
@click.option("--quiet", is_flag=True, help="Print only the summary, not each change and action.")
def demo(customers: int | None, quiet: bool) -> None:
    """Start a local broker and Redis, run the worker, feed sample journeys, print what happens."""
    from streams.demo import run_demo

    sys.exit(run_demo(customers=customers, quiet=quiet))
