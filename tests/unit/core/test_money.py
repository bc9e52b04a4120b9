"""Money in one currency: spend is kept in JOURNEY_CURRENCY, other currencies are converted with a checked
rates file or dead-lettered naming the currency, and codes are ISO 4217.

10 EUR and 1,000,000 JPY used to make one total of 1,000,010, and `ZZZ` was taken as a currency.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas import TouchpointEvent
from streams.cli import main as journey
from streams.core import apply_event
from streams.core.intake import RawMessage, decode
from streams.core.model import Model, load_model
from streams.core.money import CurrencyError, Money, load_money
from streams.replay.run import run_replay
from streams.replay.sources import iter_records
from streams.settings import Settings

START = datetime(2026, 3, 1, 10, tzinfo=UTC)
RATES = "version: 1\ncurrency: EUR\nrates:\n  USD: 0.92\n  JPY: 0.0061\n"


def purchase(event_id: str, amount: float, currency: str, day: int = 0, kind: str = "purchase") -> dict:
    stage = "purchase" if kind == "purchase" else "post_purchase"
    return {
        "event_id": event_id,
        "customer_id": "c1",
        "occurred_at": (START + timedelta(days=day)).isoformat().replace("+00:00", "Z"),
        "stage": stage,
        "touchpoint": kind,
        "channel": "web",
        "payload": {"kind": "order", "amount": amount, "currency": currency},
    }


def parsed(data: dict) -> TouchpointEvent:
    return TouchpointEvent.model_validate_json(json.dumps(data))


def rates_file(tmp_path: Path, text: str = RATES, name: str = "rates.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def with_money(
    tmp_path: Path | None = None, currency: str = "EUR", max_amount: float = 1e6, text: str = RATES
) -> Model:
    return load_model(money=load_money(currency, None if tmp_path is None else rates_file(tmp_path, text), max_amount))


def run(events: list[dict], model: Model):
    state, refused = None, []
    for data in events:
        out = apply_event(state, parsed(data), model)
        if out.refused is not None:
            refused.append(out.refused)
            assert out.changes == [] and out.actions == []
        else:
            state = out.state
    return state, refused


# --------------------------------------------------------------------------- codes


@pytest.mark.parametrize("code", ["ZZZ", "EUX", "ABC"])
def test_a_currency_that_is_not_iso_4217_is_dead_lettered_naming_it(code):
    message = RawMessage("t", 0, 1, b"c1", json.dumps(purchase("e1", 10, code)).encode())
    reason = decode(message, 65536)
    assert isinstance(reason, str) and "payload.order.currency" in reason and code in reason and "ISO 4217" in reason


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "CHF", "BRL"])
def test_iso_4217_codes_are_taken(code):
    assert parsed(purchase("e1", 10, code)).payload.currency == code


# --------------------------------------------------------------------------- conversion


def test_without_rates_an_order_in_another_currency_is_refused_naming_it_and_not_added():
    state, refused = run([purchase("e1", 10, "EUR"), purchase("e2", 1_000_000, "JPY", 1)], with_money())
    assert state.total_spend == 10 and state.purchases == 1
    assert len(refused) == 1 and "JPY" in refused[0] and "EUR" in refused[0], refused
    assert refused[0].startswith("payload.currency:") and "JOURNEY_CURRENCY_RATES_FILE" in refused[0]


def test_with_rates_orders_are_added_in_the_state_currency(tmp_path):
    state, refused = run([purchase("e1", 10, "EUR"), purchase("e2", 1_000_000, "JPY", 1)], with_money(tmp_path))
    assert refused == [] and state.purchases == 2
    assert state.total_spend == pytest.approx(10 + 1_000_000 * 0.0061)
    state, _ = run([purchase("e1", 19.99, "USD")], with_money(tmp_path))
    assert state.total_spend == round(19.99 * 0.92, 6)


def test_a_currency_the_rates_file_does_not_list_is_refused_naming_it_and_the_file(tmp_path):
    _, refused = run([purchase("e1", 10, "GBP")], with_money(tmp_path))
    assert len(refused) == 1 and "GBP" in refused[0] and "rates.yaml" in refused[0], refused


def test_a_refund_in_a_currency_without_a_rate_is_refused_too():
    """Every order payload is money of the customer: none is taken in a currency the state cannot hold."""
    _, refused = run([purchase("e1", 10, "EUR"), purchase("e2", 10, "USD", 1, kind="refund")], with_money())
    assert len(refused) == 1 and "USD" in refused[0]


def test_an_order_above_the_largest_amount_is_refused_in_the_state_currency(tmp_path):
    model = with_money(tmp_path, max_amount=1000)
    state, refused = run(
        [purchase("e1", 1000, "EUR"), purchase("e2", 1000.01, "EUR", 1), purchase("e3", 200_000, "JPY", 2)], model
    )
    assert state.purchases == 1 and state.total_spend == 1000
    assert len(refused) == 2 and all("JOURNEY_MAX_ORDER_AMOUNT" in r for r in refused), refused
    assert "1000.01 EUR" in refused[0] and "200000 JPY (1220 EUR)" in refused[1], refused
    ok, refused = run([purchase("e3", 150_000, "JPY")], model)  # 915 EUR: under the limit once converted
    assert refused == [] and ok.total_spend == pytest.approx(915)


def test_the_state_currency_is_a_setting(tmp_path, monkeypatch):
    rates = rates_file(tmp_path, "version: 1\ncurrency: USD\nrates:\n  EUR: 1.09\n")
    monkeypatch.setenv("JOURNEY_CURRENCY", "USD")
    monkeypatch.setenv("JOURNEY_CURRENCY_RATES_FILE", str(rates))
    monkeypatch.setenv("JOURNEY_MAX_ORDER_AMOUNT", "5000")
    model = Settings().load_model()
    assert (model.money.currency, dict(model.money.rates), model.money.max_order_amount) == ("USD", {"EUR": 1.09}, 5000)
    state, refused = run([purchase("e1", 100, "EUR"), purchase("e2", 7, "USD", 1)], model)
    assert refused == [] and state.total_spend == pytest.approx(109 + 7)


@pytest.mark.parametrize("code", ["ZZZ", "eur", "EURO"])
def test_a_state_currency_that_is_not_iso_4217_is_refused(code, monkeypatch):
    monkeypatch.setenv("JOURNEY_CURRENCY", code)
    with pytest.raises(ValueError, match="currency"):
        Settings()
    with pytest.raises(CurrencyError, match="ISO 4217"):
        load_money(code)


# --------------------------------------------------------------------------- the rates file


@pytest.mark.parametrize(
    "text,expected",
    [
        ("version: 1\ncurrency: EUR\nrates:\n  USD: 0.92\n  ZZZ: 2\n", "line 5: rates.ZZZ: 'ZZZ' is not an ISO 4217"),
        ("version: 1\ncurrency: EUR\nrates:\n  USD: '0.92'\n", "line 4: rates.USD: Input should be a valid number"),
        ("version: 1\ncurrency: EUR\nrates:\n  USD: 0\n", "line 4: rates.USD: Input should be greater than"),
        ("version: 1\ncurrency: EUR\nrates:\n  USD: -1.5\n", "line 4: rates.USD: Input should be greater than"),
        ("version: 1\ncurrency: EUR\nrates:\n  USD: .inf\n", "line 4: rates.USD: Input should be a finite number"),
        ("version: 1\ncurrency: EUR\nrates:\n  USD: true\n", "line 4: rates.USD: Input should be a valid number"),
        ("version: 1\ncurrency: EUR\nrates:\n  EUR: 2\n", "line 4: rates.EUR: EUR is the currency the rates convert"),
        ("version: 1\ncurrency: USD\nrates:\n  EUR: 1.1\n", "line 2: currency: the rates convert into USD, but"),
        ("version: 1\ncurrency: EUR\nratez:\n  USD: 1\n", "line 3: ratez: unknown field (did you mean 'rates'?"),
        ("version: 2\ncurrency: EUR\nrates: {}\n", "line 1: version:"),
        ("version: 1\ncurrency: EUR\nrates:\n  USD: 1\n  USD: 2\n", "line 5: not valid YAML: duplicate key 'USD'"),
        ("- USD\n", "line 1: expected a mapping of fields (version, currency, rates)"),
    ],
    ids=[
        "unknown-code",
        "text-rate",
        "zero",
        "negative",
        "infinite",
        "boolean",
        "own-currency",
        "other-base",
        "unknown-field",
        "version",
        "duplicate",
        "not-a-mapping",
    ],
)
def test_a_bad_rates_file_is_refused_naming_the_line(tmp_path, text, expected):
    with pytest.raises(CurrencyError) as info:
        load_money("EUR", rates_file(tmp_path, text))
    assert f"rates.yaml {expected}" in str(info.value), str(info.value)


def test_a_bad_rates_file_stops_the_replay_before_it_reads_anything(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(purchase("e1", 10, "USD")) + "\n")
    bad = rates_file(tmp_path, "version: 1\ncurrency: EUR\nrates:\n  USD: nope\n")
    result = CliRunner().invoke(
        journey, ["replay", str(events), "--out", str(tmp_path / "o"), "--currency-rates", str(bad)]
    )
    assert result.exit_code == 2 and "rates.yaml line 4: rates.USD" in result.output, result.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- the replay takes the same settings


def _dead(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "dead-letters.jsonl").read_text().splitlines()]


def test_the_replay_converts_with_the_rates_or_dead_letters_naming_the_currency(tmp_path, monkeypatch):
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps(e) + "\n" for e in (purchase("e1", 10, "EUR"), purchase("e2", 1_000_000, "JPY", 1)))
    )
    runner = CliRunner()
    plain = runner.invoke(journey, ["replay", str(events), "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert [(d["line"], "JPY" in d["error"]) for d in _dead(tmp_path / "plain")] == [(2, True)]
    summary = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert (summary["records"], summary["events"], summary["dead_lettered"]) == (2, 1, 1)

    rates = rates_file(tmp_path)
    converted = runner.invoke(
        journey, ["replay", str(events), "--out", str(tmp_path / "conv"), "--currency-rates", str(rates)]
    )
    assert converted.exit_code == 0, converted.output
    assert _dead(tmp_path / "conv") == []

    monkeypatch.setenv("JOURNEY_CURRENCY_RATES_FILE", str(rates))  # the worker's setting: the same outputs
    from_env = runner.invoke(journey, ["replay", str(events), "--out", str(tmp_path / "env")])
    assert from_env.exit_code == 0, from_env.output
    for name in ("changes.jsonl", "actions.jsonl", "dead-letters.jsonl"):
        assert (tmp_path / "env" / name).read_bytes() == (tmp_path / "conv" / name).read_bytes(), name


def test_replay_to_kafka_refuses_the_money_options(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(purchase("e1", 10, "EUR")) + "\n")
    result = CliRunner().invoke(journey, ["replay", str(events), "--to-kafka", "--currency", "USD"])
    assert result.exit_code == 2 and "--currency" in result.output, result.output


def test_run_replay_with_a_model_from_settings_keeps_spend_in_its_currency(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(purchase("e1", 100, "USD")) + "\n")
    model = Settings(currency_rates_file=rates_file(tmp_path)).load_model()
    report = run_replay(iter_records(events), model)
    assert report.dead_letters == 0 and report.events == 1


def test_the_settings_default_to_the_cores_defaults(monkeypatch):
    """EUR, as the bundled sample, so that its golden outputs stay what they were; no rates; one million."""
    for name in ("JOURNEY_CURRENCY", "JOURNEY_CURRENCY_RATES_FILE", "JOURNEY_MAX_ORDER_AMOUNT"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().load_model().money == Money() == Money("EUR", max_order_amount=1_000_000)
