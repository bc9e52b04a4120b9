"""Import of exports through mapping files: the shipped mappings, rejected rows, bad mapping files, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas import Stage, Touchpoint, TouchpointEvent
from streams.cli import main
from streams.imports.mapping import (
    ImportCounts,
    Mapping,
    MappingError,
    iter_mapped,
    load_mapping,
    shipped_mapping,
)

UTC = UTC

ORDERS = """\
customer_id,date,quantity,amount
c1,2026-03-01,1,19.90
c2,2026-03-01,2,35.00
c1,2026-03-08,1,12.50
,2026-03-09,1,10.00
c3,2026-02-30,1,10.00
c3,03/10/2026,1,10.00
c4,2026-03-11,1,abc
c5,2026-03-12,3,0
c6,2026-03-13,1,-4

c7,2026-03-14,1
c2, 2026-03-15 ,1, 7.25
"""

CLICKS = """\
user_id,session_id,event_name,timestamp,revenue
u1,s1,home,2026-03-01T10:00:00Z,
u1,s1,product_view,2026-03-01T10:01:00Z,
u1,s1,add_to_cart,2026-03-01T10:02:00Z,
u1,s1,cart,2026-03-01T10:03:00Z,
u1,s1,checkout_step_1,2026-03-01T10:04:00Z,
u1,s1,checkout_step_2,2026-03-01T10:05:00Z,
u1,s1,purchase,2026-03-01T10:06:00Z,49.90
u2,s2,support_chat,2026-03-02T09:00:00+01:00,
u2,s2,wishlist,2026-03-02T09:01:00Z,
u2,s2,purchase,2026-03-02T09:02:00Z,
,s3,home,2026-03-03T08:00:00Z,
u3,s3,home,yesterday,
u3,s3,purchase,2026-03-03T08:05:00Z,12,50
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(export: Path, mapping: Mapping) -> tuple[list, ImportCounts]:
    counts = ImportCounts()
    return list(iter_mapped(export, mapping, counts)), counts


def at(day: int, hour: int = 0, minute: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=tz)


def summary(event: TouchpointEvent) -> tuple:
    amount = event.payload.amount if event.payload is not None else None
    return event.touchpoint, event.stage, event.customer_id, event.occurred_at, amount


# ---------------------------------------------------------------- the shipped mappings


def test_orders_mapping_maps_every_good_row_to_a_purchase(tmp_path):
    records, counts = run(write(tmp_path, "orders.csv", ORDERS), load_mapping(shipped_mapping("orders")))

    events = {r.line: r.event for r in records if r.event is not None}
    p = (Touchpoint.PURCHASE, Stage.PURCHASE)
    assert {line: summary(e) for line, e in events.items()} == {
        2: (*p, "c1", at(1), 19.90),
        3: (*p, "c2", at(1), 35.00),
        4: (*p, "c1", at(8), 12.50),
        9: (*p, "c5", at(12), 0.0),  # a free order is still an order
        13: (*p, "c2", at(15), 7.25),  # cells are stripped
    }
    assert all(e.channel == "web" and e.payload.currency == "EUR" for e in events.values())
    assert all(r.source == "orders.csv" for r in records)
    assert records[0].raw == "c1,2026-03-01,1,19.90"

    errors = {r.line: r.error for r in records if r.error is not None}
    assert sorted(errors) == [5, 6, 7, 8, 10, 12]  # line 11 is blank: no row
    assert errors[5] == "customer missing: column 'customer_id' is empty"
    assert errors[6].startswith("time unparsable: column 'date': '2026-02-30' is not a time in format '%Y-%m-%d'")
    assert errors[7] == "time unparsable: column 'date': '03/10/2026' is not a time in format '%Y-%m-%d'"
    assert errors[8] == "amount not a number: column 'amount': 'abc' is not a number"
    assert errors[10].startswith("event invalid: payload.amount (column 'amount') -4.0:")
    assert errors[12] == "row has wrong number of fields: 3 fields, the header has 4"

    assert (counts.rows, counts.mapped, counts.ignored, counts.rejected_total) == (11, 5, 0, 6)
    assert counts.examples == {
        "customer missing": [5],
        "time unparsable": [6, 7],
        "amount not a number": [8],
        "event invalid": [10],
        "row has wrong number of fields": [12],
    }


def test_clickstream_mapping_maps_event_names_and_rejects_what_it_cannot(tmp_path):
    records, counts = run(write(tmp_path, "clicks.csv", CLICKS), load_mapping(shipped_mapping("clickstream")))

    events = {r.line: summary(r.event) for r in records if r.event is not None}
    pre, buy = Stage.PRE_PURCHASE, Stage.PURCHASE
    assert events == {
        2: (Touchpoint.PAGE_VIEW, pre, "u1", at(1, 10, 0), None),
        3: (Touchpoint.PRODUCT_VIEW, buy, "u1", at(1, 10, 1), None),
        4: (Touchpoint.ADD_TO_CART, buy, "u1", at(1, 10, 2), None),
        5: (Touchpoint.CATALOG_VIEW, buy, "u1", at(1, 10, 3), None),  # cart view: browsing, not an add
        6: (Touchpoint.CHECKOUT_START, buy, "u1", at(1, 10, 4), None),
        7: (Touchpoint.CHECKOUT_START, buy, "u1", at(1, 10, 5), None),
        8: (Touchpoint.PURCHASE, buy, "u1", at(1, 10, 6), 49.90),
        9: (Touchpoint.PRESALES_CHAT, buy, "u2", at(2, 8, 0), None),  # 09:00+01:00
    }

    errors = {r.line: r.error for r in records if r.error is not None}
    assert errors == {
        10: "kind not mapped: column 'event_name': 'wishlist' is not in `kind.map` (nor in `kind.ignore`)",
        11: "amount missing: a purchase needs an amount; column 'revenue' is empty",
        12: "customer missing: column 'user_id' is empty",
        13: "time unparsable: column 'timestamp': 'yesterday' is not an ISO 8601 time",
        14: "row has wrong number of fields: 6 fields, the header has 5",
    }
    assert (counts.rows, counts.mapped, counts.rejected_total) == (13, 8, 5)


def test_clickstream_export_without_a_revenue_column(tmp_path):
    text = "user_id,session_id,event_name,timestamp\nu1,s1,home,2026-03-01T10:00:00Z\nu1,s1,purchase,2026-03-01T10:06:00Z\n"
    records, _ = run(write(tmp_path, "clicks.csv", text), load_mapping(shipped_mapping("clickstream")))
    assert records[0].event.touchpoint is Touchpoint.PAGE_VIEW
    assert (records[1].line, records[1].error) == (
        3,
        "amount missing: a purchase needs an amount; column 'revenue' is empty",
    )


def test_event_ids_are_deterministic_and_distinct(tmp_path):
    export = write(tmp_path, "orders.csv", ORDERS + "c1,2026-03-01,1,19.90\n")  # same content as line 2
    mapping = load_mapping(shipped_mapping("orders"))
    first = [r.event.event_id for r in run(export, mapping)[0] if r.event]
    second = [r.event.event_id for r in run(export, load_mapping(shipped_mapping("orders")))[0] if r.event]
    assert first == second
    assert len(set(first)) == len(first) == 6


def test_output_is_valid_event_json(tmp_path):
    records, _ = run(write(tmp_path, "orders.csv", ORDERS), load_mapping(shipped_mapping("orders")))
    for record in records:
        if record.event is not None:
            text = record.event.model_dump_json(by_alias=True, exclude_none=True)
            assert TouchpointEvent.model_validate_json(text) == record.event


# ---------------------------------------------------------------- mapping features


def test_jsonl_with_ignore_event_id_column_scores_and_unit_prices(tmp_path):
    mapping_file = write(
        tmp_path,
        "m.yaml",
        """\
format: jsonl
customer: user.id
time: {column: ts, format: "%d/%m/%Y %H:%M", timezone: Europe/Lisbon}
event_id: {column: id}
kind:
  column: type
  map: {buy: purchase, csat: survey_response, "on": page_view}
  ignore: [heartbeat]
channel: {column: via, default: app}
country: {column: cc}
amount: {column: price}
quantity: {column: qty}
amount_is_unit_price: true
currency: {column: cur}
score: {csat: stars}
""",
    )
    rows = [
        {
            "id": "e1",
            "user": {"id": "k1"},
            "ts": "01/07/2026 10:00",
            "type": "buy",
            "price": 9.99,
            "qty": 3,
            "cur": "USD",
            "cc": "PT",
        },
        {"id": "e2", "user": {"id": "k1"}, "ts": "01/07/2026 11:00", "type": "heartbeat"},
        {"id": "e3", "user": {"id": "k1"}, "ts": "02/07/2026 10:00", "type": "csat", "stars": 4, "via": "email"},
        {"id": "e4", "user": {"id": "k2"}, "ts": "02/07/2026 10:00", "type": "csat"},
        {"id": "e5", "user": {"id": 7}, "ts": "03/07/2026 10:00", "type": "on"},
        {"id": "e6", "user": {"id": "k3"}, "ts": "03/07/2026 10:00", "type": "heartbeat", "junk": True},
        {
            "id": "e7",
            "user": {"id": "k3"},
            "ts": "03/07/2026 10:00",
            "type": "buy",
            "price": 5,
            "qty": 1,
            "cur": "USD",
            "cc": "PRT",
        },
    ]
    lines = [json.dumps(row) for row in rows]
    lines.insert(3, "{not json")
    records, counts = run(write(tmp_path, "events.jsonl", "\n".join(lines) + "\n"), load_mapping(mapping_file))

    lisbon_summer = timezone(timedelta(hours=1))
    by_line = {r.line: r for r in records}
    buy = by_line[1].event
    assert (buy.event_id, buy.customer_id, buy.occurred_at, buy.channel, buy.country) == (
        "e1",
        "k1",
        datetime(2026, 7, 1, 10, tzinfo=lisbon_summer),
        "app",
        "PT",
    )
    assert (buy.payload.amount, buy.payload.currency) == (29.97, "USD")
    survey = by_line[3].event
    assert (survey.touchpoint, survey.stage, survey.payload.csat, survey.channel) == (
        Touchpoint.SURVEY_RESPONSE,
        Stage.POST_PURCHASE,
        4,
        "email",
    )
    assert by_line[6].event.customer_id == "7"
    assert by_line[6].event.touchpoint is Touchpoint.PAGE_VIEW  # `on` stays text, not YAML's true
    assert by_line[4].error.startswith("row not JSON: ")
    assert by_line[5].error == "score missing: a survey_response needs a score; columns 'stars' are empty"
    assert by_line[8].error.startswith("event invalid: country (column 'cc') 'PRT': ")
    assert 2 not in by_line and 7 not in by_line
    assert (counts.rows, counts.mapped, counts.ignored, counts.rejected_total) == (8, 3, 2, 3)
    assert counts.ignored_values == {"heartbeat": 2}


def test_examples_are_capped_per_reason(tmp_path):
    text = "customer_id,date,quantity,amount\n" + "".join(f"c{i},2026-03-01,1,x\n" for i in range(9))
    _, counts = run(write(tmp_path, "o.csv", text), load_mapping(shipped_mapping("orders")))
    assert counts.rejected == {"amount not a number": 9}
    assert counts.examples["amount not a number"] == [2, 3, 4, 5, 6]


def test_header_without_a_needed_column_is_refused(tmp_path):
    export = write(tmp_path, "o.csv", "customer,date,quantity,amount\nc1,2026-03-01,1,2\n")
    with pytest.raises(
        MappingError,
        match=r"o.csv line 1: the header has no column 'customer_id' \(for `customer`\); "
        r"did you mean 'customer'\?",
    ):
        list(iter_mapped(export, load_mapping(shipped_mapping("orders"))))


def test_multi_line_csv_rows_keep_their_first_line_number(tmp_path):
    mapping_file = write(
        tmp_path,
        "m.yaml",
        """\
format: csv
delimiter: ";"
customer: who
time: {column: when}
kind: {constant: content_view}
channel: {constant: web}
segment: {column: note}
""",
    )
    export = write(tmp_path, "x.csv", 'who;when;note\nk1;2026-03-01T10:00:00Z;"two\nlines"\nk2;2026-03-01;n\n')
    records, _ = run(export, load_mapping(mapping_file))
    assert [(r.line, r.raw) for r in records] == [(2, 'k1;2026-03-01T10:00:00Z;"two\nlines"'), (4, "k2;2026-03-01;n")]
    assert records[0].event.segment == "two\nlines"
    assert records[1].error.startswith("time without offset: column 'when': '2026-03-01' has no UTC offset")


# ---------------------------------------------------------------- bad mapping files

GOOD = """\
format: csv
customer: customer_id
time: {column: date, format: "%Y-%m-%d", timezone: UTC}
kind:
  column: event_name
  map: {home: page_view, purchase: purchase}
channel: {constant: web}
amount: {column: amount}
currency: {constant: EUR}
"""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("channel: {constant: web}", "chanel: {constant: web}"),
            "m.yaml line 7: chanel: unknown field (did you mean 'channel'?",
            id="unknown-field",
        ),
        pytest.param(
            ("purchase: purchase", "purchse: purchse"),
            "m.yaml line 6: kind.map.purchse: 'purchse' is not a touchpoint kind (did you mean 'purchase'?)",
            id="unknown-touchpoint",
        ),
        pytest.param(
            ("kind:\n  column: event_name\n  map: {home: page_view, purchase: purchase}", "kind: purchase"),
            "m.yaml line 4: kind: expected a mapping of fields (key: value), got text 'purchase'",
            id="wrong-type",
        ),
        pytest.param(
            ('format: "%Y-%m-%d"', "format: %Y-%m-%d"),
            "m.yaml line 3: not valid YAML: found character '%' that cannot start any token",
            id="bad-yaml",
        ),
        pytest.param(
            ("customer: customer_id\n", ""), "m.yaml line 1: customer: required, but missing", id="missing-key"
        ),
        pytest.param(
            ('"%Y-%m-%d"', '"YYYY-MM-DD"'),
            "m.yaml line 3: time.format: 'YYYY-MM-DD' is neither 'iso' nor a strptime format",
            id="bad-time-format",
        ),
        pytest.param(
            (", timezone: UTC", ""),
            "m.yaml line 3: time.timezone: times read with '%Y-%m-%d' carry no UTC offset",
            id="no-timezone",
        ),
        pytest.param(
            ("amount: {column: amount}\n", ""),
            "m.yaml line 4: kind: 'purchase' needs an order payload: add `amount` and `currency`",
            id="purchase-without-amount",
        ),
        pytest.param(
            ("currency: {constant: EUR}", "currency: {constant: ZZZ}"),
            "m.yaml line 9: currency.constant: 'ZZZ' is not an ISO 4217 code such as EUR",
            id="currency-not-iso-4217",
        ),
        pytest.param(
            ("purchase: purchase", "review: review_written"),
            "m.yaml line 4: kind: 'review_written' needs a score payload",
            id="review-without-score",
        ),
        pytest.param(
            ("channel: {constant: web}", "channel: {constant: web, column: via}"),
            "m.yaml line 7: channel: give either `column` or `constant`",
            id="column-and-constant",
        ),
        pytest.param(
            ("channel: {constant: web}", "channel: {constant: web}\nchannel: {constant: app}"),
            "m.yaml line 8: not valid YAML: duplicate key 'channel' (first on line 7)",
            id="duplicate-key",
        ),
    ],
)
def test_bad_mapping_names_the_line_and_field(tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD
    with pytest.raises(MappingError) as caught:
        load_mapping(write(tmp_path, "m.yaml", GOOD.replace(old, new)))
    assert expected in str(caught.value), str(caught.value)


def test_the_good_mapping_loads_and_shipped_names_resolve(tmp_path):
    assert load_mapping(write(tmp_path, "m.yaml", GOOD)).kind.kinds == {Touchpoint.PAGE_VIEW, Touchpoint.PURCHASE}
    assert shipped_mapping("orders").name == "orders.yaml"
    with pytest.raises(MappingError, match="no shipped mapping named 'order'"):
        shipped_mapping("order")


# ---------------------------------------------------------------- the command


def test_import_command_writes_events_and_reports(tmp_path):
    export, out = write(tmp_path, "orders.csv", ORDERS), tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        main, ["import", str(export), "--mapping", "orders", "--out", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    events = [TouchpointEvent.model_validate_json(line) for line in out.read_text().splitlines()]
    assert [(e.customer_id, e.payload.amount) for e in events] == [
        ("c1", 19.90),
        ("c2", 35.0),
        ("c1", 12.5),
        ("c5", 0.0),
        ("c2", 7.25),
    ]
    report = result.stdout
    for row in ("read", "mapped", "ignored", "rejected"):
        assert row in report
    assert "│ read " in report and "│    11 │" in report
    assert "time unparsable" in report and "lines 6, 7" in report
    assert "customer missing" in report and "line 5" in report
    assert "e.g. column 'amount': 'abc' is not a number" in report
    assert not (tmp_path / "events.jsonl.part").exists()


def test_import_command_with_a_mapping_path(tmp_path):
    export, out = write(tmp_path, "clicks.csv", CLICKS), tmp_path / "e.jsonl"
    mapping = write(tmp_path, "click.yaml", shipped_mapping("clickstream").read_text())
    result = CliRunner().invoke(main, ["import", str(export), "--mapping", str(mapping), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 8


def test_import_command_exits_2_on_a_bad_mapping(tmp_path):
    export, out = write(tmp_path, "orders.csv", ORDERS), tmp_path / "e.jsonl"
    mapping = write(tmp_path, "m.yaml", GOOD.replace("purchase: purchase", "purchase: purchse"))
    result = CliRunner().invoke(main, ["import", str(export), "--mapping", str(mapping), "--out", str(out)])
    assert result.exit_code == 2
    assert "m.yaml line 6: kind.map.purchase: 'purchse' is not a touchpoint kind" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()

    result = CliRunner().invoke(main, ["import", str(export), "--mapping", "clickstream", "--out", str(out)])
    assert result.exit_code == 2
    assert "orders.csv line 1: the header has no column 'user_id'" in result.stderr
    assert not out.exists() and not (tmp_path / "e.jsonl.part").exists()
