"""`journey forget` refuses what it cannot send before it connects to anything (no broker here)."""

from __future__ import annotations

from click.testing import CliRunner

from streams.cli import main as journey


def test_forget_needs_at_least_one_id(tmp_path) -> None:
    empty = tmp_path / "ids.txt"
    empty.write_text("\n  \n")
    run = CliRunner().invoke(journey, ["forget", "--file", str(empty)])
    assert run.exit_code == 2 and "at least one CUSTOMER_ID" in run.output


def test_forget_refuses_a_timeout_below_its_floor() -> None:
    run = CliRunner().invoke(journey, ["forget", "ana", "--wait", "--timeout", "0"])
    assert run.exit_code == 2 and "--timeout" in run.output


def test_forget_refuses_an_id_the_schema_refuses_before_sending_any() -> None:
    run = CliRunner().invoke(journey, ["forget", "ana", "x" * 5000], env={"JOURNEY_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert run.exit_code == 1 and "not a valid erasure request" in run.output and "sent" not in run.output
