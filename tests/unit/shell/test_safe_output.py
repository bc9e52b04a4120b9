"""What the product prints is safe for a stranger to read: no secrets, no markup or control characters
from customer text, settings that cannot make two deployments share keys."""

from __future__ import annotations

import io
import logging
import socket

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from rich.console import Console

from streams.cli import main
from streams.core.model import load_model
from streams.core.state import CustomerState
from streams.explain import render_customer
from streams.logs import SafeLogFilter
from streams.settings import Settings
from streams.text import printable, redact_url, shown

PASSWORD = "s3cret-Passw0rd"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- secrets


def test_a_redis_url_is_shown_without_its_password():
    assert redact_url(f"redis://default:{PASSWORD}@cache:6379/0") == "redis://default:***@cache:6379/0"
    assert redact_url(f"rediss://:{PASSWORD}@cache:6380") == "rediss://:***@cache:6380"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
    settings = Settings(redis_url=f"redis://u:{PASSWORD}@h:1/0")
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert PASSWORD not in settings.redis_shown
    assert settings.redis_dsn.endswith(f"{PASSWORD}@h:1/0")


def test_log_lines_never_carry_the_password_or_control_characters():
    settings = Settings(redis_url=f"redis://u:{PASSWORD}@h:1/0")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SafeLogFilter(settings.secrets()))
    log = logging.getLogger("test.safe-output")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connecting to %s", settings.redis_dsn)
        log.warning("password %s in a message", PASSWORD)
        log.warning("event %s failed", "evt-\x1b[2J\x1b[31mred")
        try:
            raise ConnectionError(f"cannot reach redis://u:{PASSWORD}@h:1/0")
        except ConnectionError:
            log.exception("batch failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert PASSWORD not in text
    assert "redis://u:***@h:1/0" in text
    assert "\x1b" not in text and "evt-\\x1b[2J\\x1b[31mred" in text
    assert "Traceback" in text and "ConnectionError" in text  # the traceback is kept, made safe


def test_journey_explain_never_prints_the_password_when_redis_is_unreachable():
    url = f"redis://user:{PASSWORD}@127.0.0.1:{_closed_port()}/0"
    result = CliRunner().invoke(main, ["explain", "alice"], env={"JOURNEY_REDIS_URL": url})
    assert result.exit_code == 2
    assert "cannot read from Redis at redis://user:***@127.0.0.1" in result.output
    assert PASSWORD not in result.output


def test_invalid_settings_end_a_command_naming_the_variable_not_its_value():
    result = CliRunner().invoke(main, ["explain", "alice"], env={"JOURNEY_KEY_PREFIX": "journey:c:evil"})
    assert result.exit_code == 2
    assert "JOURNEY_KEY_PREFIX" in result.output and "Traceback" not in result.output


# ----------------------------------------------------------------------------- prefixes


@pytest.mark.parametrize("prefix", ["journey:c:evil", "a*", "[x]", "", "-dash-first", "x" * 65, "replay"])
def test_a_key_prefix_that_could_reach_into_other_keys_is_refused(prefix):
    with pytest.raises(ValidationError):
        Settings(key_prefix=prefix)


@pytest.mark.parametrize("prefix", ["journey", "t0", "shop-eu.prod_2"])
def test_ordinary_key_prefixes_are_accepted(prefix):
    assert Settings(key_prefix=prefix).key_prefix == prefix


def test_topic_names_follow_kafka_rules():
    with pytest.raises(ValidationError):
        Settings(topic_touchpoints="journey:touchpoints")
    with pytest.raises(ValidationError):
        Settings(topic_dead_letter="dead letter")


# ----------------------------------------------------------------------------- customer text


def test_printable_escapes_control_and_format_characters():
    assert printable("plain-id_1") == "plain-id_1"
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("x\u202eevil") == "x\\u202eevil"  # right-to-left override
    assert printable("line\nnext") == "line\\x0anext"
    assert printable("line\nnext", keep_newlines=True) == "line\nnext"
    assert shown("x[/][bold]") == "x\\[/]\\[bold]"


@pytest.mark.parametrize("hostile", ["x[/][bold]", "[/]", "[link=http://evil]click[/link]", "a\x1b]0;title\x07b"])
def test_journey_explain_prints_customer_text_literally(hostile):
    model = load_model()
    state = CustomerState(customer_id=hostile, first_seen=1.7e9, last_seen=1.7e9)
    state.lifecycle = "prospect"
    state.actions_sent["welcome_onboarding"] = 1.7e9
    history = [
        {
            "at": "2026-01-01T00:00:00Z",
            "dimension": "lifecycle",
            "from": None,
            "to": "prospect",
            "reason": {"rule": "lifecycle.prospect", "evidence": {"events": 1}},
            "caused_by": hostile,
        }
    ]
    console = Console(file=io.StringIO(), width=200, color_system=None, record=True)
    render_customer(console, state, history, model)  # markup in the text would raise here
    text = console.export_text()
    assert "\x1b" not in text and "\x07" not in text
    assert text.splitlines()[0].startswith(f"{printable(hostile)}: lifecycle prospect")


def test_a_redis_url_without_a_password_is_logged_whole():
    """Only secrets are hidden: a URL without a password still tells the operator which Redis."""
    settings = Settings(redis_url="redis://cache.internal:6379/0")
    assert settings.secrets() == ()
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "Redis %s", (settings.redis_shown,), None)
    SafeLogFilter(settings.secrets()).filter(record)
    assert record.getMessage() == "Redis redis://cache.internal:6379/0"
