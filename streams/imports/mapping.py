"""Import of real-world exports (CSV, JSON Lines) through a YAML mapping file, without code.

Most teams have exports, not our event format. A mapping file says which column holds what. It is
written by hand, so it is checked completely before any row is read, and every error names the
file, the line and the field. The export is then streamed row by row into `SourceRecord`s: an
event, or the reason the row could not be one. No row disappears silently: each is mapped,
ignored on purpose (`kind.ignore`), or rejected with its line number; `ImportCounts` keeps score.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from hashlib import blake2b
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas import STAGE_OF, Touchpoint, TouchpointEvent
from schemas.currencies import is_currency
from schemas.touchpoint import PAYLOAD_ALLOWED, PAYLOAD_REQUIRED, OrderPayload, ScorePayload
from streams.imports.records import SourceRecord
from streams.yamlfile import custom_error, shown, validated_yaml

SCORES = ("csat", "nps", "ces", "rating", "sentiment")


class MappingError(ValueError):
    """A mapping file that cannot be used (or an export it does not fit); the message says where and why."""


# ---------------------------------------------------------------- the mapping file's models


_fail = custom_error


def _scalar_text(value: Any) -> Any:
    """YAML reads `delimiter: 1` or a numeric event code as a number; take it as the text it was."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _touchpoint(value: Any) -> Touchpoint:
    if not isinstance(value, str):
        hint = " (to skip a value, list it under `ignore`)" if value is None else ""
        raise _fail(f"expected a touchpoint kind, got {shown(value)}{hint}")
    try:
        return Touchpoint(value)
    except ValueError:
        close = difflib.get_close_matches(value, [t.value for t in Touchpoint], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _fail(f"{value!r} is not a touchpoint kind{hint}") from None


def _column_name(value: Any) -> Any:
    """`customer: id` and `customer: {column: id}` mean the same."""
    if isinstance(value, dict) and set(value) == {"column"}:
        value = value["column"]
    return _scalar_text(value)


Text = Annotated[str, BeforeValidator(_scalar_text), StringConstraints(min_length=1)]
ColumnName = Annotated[str, BeforeValidator(_column_name), StringConstraints(min_length=1)]
TouchpointName = Annotated[Touchpoint, BeforeValidator(_touchpoint)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Value(_Strict):
    """Where a field comes from: a column of the export, or one constant for every row."""

    column: Text | None = None
    constant: Text | None = None
    optional: bool = False  # the export may lack the column altogether (else its header must have it)
    default: Text | None = None  # used when the cell is empty (or the optional column absent)

    @model_validator(mode="after")
    def _one_source(self) -> Value:
        if (self.column is None) == (self.constant is None):
            raise _fail("give either `column` or `constant`")
        if self.constant is not None and (self.optional or self.default is not None):
            raise _fail("`optional` and `default` go with `column`, not with `constant`")
        return self


class Column(_Strict):
    column: Text


class TimeSpec(_Strict):
    """The event time: a column, read with strptime or as ISO 8601; `timezone` for naive values."""

    column: Text
    format: Text = "iso"
    timezone: Text | None = None

    @field_validator("format")
    @classmethod
    def _format_reads_a_date(cls, fmt: str) -> str:
        if fmt == "iso":
            return fmt
        if "%" not in fmt:
            raise _fail(f"{fmt!r} is neither 'iso' nor a strptime format such as '%Y-%m-%d'")
        sample = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
        try:
            parsed = datetime.strptime(sample.strftime(fmt), fmt)
        except ValueError as exc:
            raise _fail(f"{fmt!r} is not a strptime format: {exc}") from None
        if parsed.date() != sample.date():
            raise _fail(f"{fmt!r} does not give a whole date (year, month and day, e.g. '%Y-%m-%d')")
        return fmt

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, name: str | None) -> str | None:
        try:
            if name is not None:
                ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise _fail(f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Lisbon)") from None
        return name

    @model_validator(mode="after")
    def _offset_known(self) -> TimeSpec:
        if self.format != "iso" and "%z" not in self.format and self.timezone is None:
            raise _fail(
                f"times read with {self.format!r} carry no UTC offset: name their zone, e.g. `timezone: UTC`",
                at="timezone",
            )
        return self

    @cached_property
    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None


class KindSpec(_Strict):
    """The touchpoint: one constant, or a column whose values are mapped (others are rejected)."""

    constant: TouchpointName | None = None
    column: Text | None = None
    map: dict[Text, TouchpointName] | None = None
    ignore: list[Text] = []

    @model_validator(mode="after")
    def _consistent(self) -> KindSpec:
        if (self.column is None) == (self.constant is None):
            raise _fail("give either `constant: <touchpoint>` or `column` with a `map`")
        if self.constant is not None and (self.map is not None or self.ignore):
            raise _fail("`map` and `ignore` go with `column`, not with `constant`")
        if self.column is not None and not self.map:
            raise _fail("`column` needs a `map` from its values to touchpoint kinds", at="map")
        both = sorted(set(self.ignore) & set(self.map or ()))
        if both:
            raise _fail(f"{both[0]!r} is both mapped and ignored", at="ignore")
        return self

    @property
    def kinds(self) -> set[Touchpoint]:
        if self.constant is not None:
            return {self.constant}
        assert self.map is not None  # `_consistent`: without a constant there is a column with a map
        return set(self.map.values())


class ScoreSpec(_Strict):
    """Columns of a score payload (surveys, reviews); at least one."""

    csat: Text | None = None
    nps: Text | None = None
    ces: Text | None = None
    rating: Text | None = None
    sentiment: Text | None = None

    @model_validator(mode="after")
    def _some(self) -> ScoreSpec:
        if all(getattr(self, name) is None for name in SCORES):
            raise _fail(f"name at least one score column ({', '.join(SCORES)})")
        return self


class Mapping(_Strict):
    """A whole mapping file: how each row of an export becomes one TouchpointEvent."""

    format: Literal["csv", "jsonl"]
    delimiter: Text | None = None
    encoding: Text = "utf-8"
    customer: ColumnName
    time: TimeSpec
    event_id: Column | None = None
    kind: KindSpec
    channel: Value
    country: Value | None = None
    language: Value | None = None
    segment: Value | None = None
    amount: Value | None = None
    quantity: Value | None = None
    amount_is_unit_price: bool = False
    currency: Value | None = None
    discount: Value | None = None
    coupon: Value | None = None
    score: ScoreSpec | None = None

    @field_validator("encoding")
    @classmethod
    def _ascii_compatible(cls, name: str) -> str:
        try:
            ok = codecs.lookup(name) and "a,\n".encode(name) == b"a,\n"
        except LookupError:
            raise _fail(f"{name!r} is not a known encoding") from None
        if not ok:
            raise _fail(f"{name!r} is not line-compatible with ASCII (use utf-8, latin-1, cp1252, …)")
        return name

    @model_validator(mode="after")
    def _fits_together(self) -> Mapping:
        if self.delimiter is not None and (self.format != "csv" or len(self.delimiter) != 1):
            raise _fail("a csv delimiter is one character, and only for `format: csv`", at="delimiter")
        for kind in sorted(self.kind.kinds & set(PAYLOAD_REQUIRED)):
            if PAYLOAD_REQUIRED[kind] is OrderPayload and self.amount is None:
                raise _fail(f"{kind.value!r} needs an order payload: add `amount` and `currency`", at="kind")
            if PAYLOAD_REQUIRED[kind] is ScorePayload and self.score is None:
                raise _fail(f"{kind.value!r} needs a score payload: add `score: {{csat: <column>, …}}`", at="kind")
        if self.amount is not None and self.currency is None:
            raise _fail("`amount` needs a `currency` (a column, or a constant such as EUR)", at="amount")
        if self.currency is not None and self.currency.constant is not None and not is_currency(self.currency.constant):
            raise _fail(f"{self.currency.constant!r} is not an ISO 4217 code such as EUR", at="currency.constant")
        if self.amount_is_unit_price and self.quantity is None:
            raise _fail("needs `quantity` to multiply the unit price by", at="amount_is_unit_price")
        return self

    def columns(self) -> Iterator[tuple[str, str, bool]]:
        """(column, field path, optional) of every column the mapping reads."""
        yield self.customer, "customer", False
        yield self.time.column, "time.column", False
        if self.event_id:
            yield self.event_id.column, "event_id.column", False
        if self.kind.column:
            yield self.kind.column, "kind.column", False
        for name in (
            "channel",
            "country",
            "language",
            "segment",
            "amount",
            "quantity",
            "currency",
            "discount",
            "coupon",
        ):
            spec = getattr(self, name)
            if spec is not None and spec.column is not None:
                yield spec.column, f"{name}.column", spec.optional
        for name in SCORES:
            if self.score is not None and getattr(self.score, name):
                yield getattr(self.score, name), f"score.{name}", False


# ---------------------------------------------------------------- loading


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; any problem raises MappingError naming the line and field."""
    return validated_yaml(path, Mapping, MappingError, " (format, customer, time, kind, channel, …)")


def shipped_mapping(name: str) -> Path:
    """The path of a mapping shipped with the package (`orders`, `clickstream`)."""
    resource = files(__package__) / "mappings" / f"{name}.yaml"
    if not resource.is_file():
        raise MappingError(f"no shipped mapping named {name!r} (shipped: {', '.join(shipped_names())})")
    return Path(str(resource))


def shipped_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml") for p in (files(__package__) / "mappings").iterdir() if p.name.endswith(".yaml")
    )


def resolve_mapping(name_or_path: str) -> Path:
    """A shipped mapping's name, or the path of a mapping file."""
    path = Path(name_or_path)
    if path.exists() or "/" in name_or_path or path.suffix in (".yaml", ".yml"):
        return path
    return shipped_mapping(name_or_path)


# ---------------------------------------------------------------- reading the export


@dataclass
class ImportCounts:
    """What an import did with the rows; filled in while `iter_mapped` runs."""

    max_examples: int = 5
    rows: int = 0
    mapped: int = 0
    ignored: int = 0
    ignored_values: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)  # reason -> rows
    examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> first line numbers
    first_detail: dict[str, str] = field(default_factory=dict)  # reason -> the detail of its first row
    bytes_read: int = 0  # for a progress bar

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, line: int, detail: str) -> None:
        self.rejected[reason] += 1
        lines = self.examples.setdefault(reason, [])
        if len(lines) < self.max_examples:
            lines.append(line)
        self.first_detail.setdefault(reason, detail)


class _Reject(Exception):
    """A row that cannot be an event: a short reason (counted) and the detail (column and value)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class _Ignored(Exception):
    """A row whose kind value is listed in `kind.ignore`."""


class _Lines:
    """Decodes the export line by line, counting bytes (progress) and lines (row line numbers)."""

    def __init__(self, fh: Any, encoding: str, counts: ImportCounts) -> None:
        self.fh, self.encoding, self.counts = fh, encoding, counts
        self.line, self.undecodable = 0, False
        self.pending: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        data = self.fh.readline()
        if not data:
            raise StopIteration
        self.line += 1
        self.counts.bytes_read += len(data)
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError:
            text, self.undecodable = data.decode(self.encoding, errors="replace"), True
        if self.line == 1:
            text = text.removeprefix("\ufeff")
        self.pending.append(text)
        return text

    def take(self) -> tuple[int, str, _Reject | None]:
        """First line number, text and decoding problem of the lines read since the last call (one row)."""
        start, raw = self.line - len(self.pending) + 1, "".join(self.pending)
        problem = _Reject("row not text", f"not {self.encoding} text") if self.undecodable else None
        self.pending, self.undecodable = [], False
        return start, raw.replace("\r\n", "\n").removesuffix("\n"), problem


Row = tuple[int, str, Callable[[str], Any] | None, _Reject | None]


def _csv_rows(lines: _Lines, mapping: Mapping, source: str) -> Iterator[Row]:
    reader = csv.reader(lines, delimiter=mapping.delimiter or ",")
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise MappingError(f"{source} line 1: cannot read the CSV header: {exc}") from None
    if (problem := lines.take()[2]) is not None:
        raise MappingError(f"{source} line 1: the header is {problem.detail} (set `encoding`)")
    index = _header_index(header, mapping, source)
    while True:
        row: list[str] | _Reject
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row = _Reject("row not CSV", str(exc))
        line, raw, problem = lines.take()
        if problem is not None:
            yield line, raw, None, problem
        elif isinstance(row, _Reject):
            yield line, raw, None, row
        elif not any(cell.strip() for cell in row):
            continue  # a blank line carries nothing to map
        elif len(row) != len(header):
            yield (
                line,
                raw,
                None,
                _Reject("row has wrong number of fields", f"{len(row)} fields, the header has {len(header)}"),
            )
        else:
            yield line, raw, partial(_cell, row, index), None


def _header_index(header: list[str], mapping: Mapping, source: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name, i)
    for column, where, optional in mapping.columns():
        if header.count(column) > 1:
            raise MappingError(f"{source} line 1: column {column!r} (for `{where}`) appears twice in the header")
        if column not in index and not optional:
            close = difflib.get_close_matches(column, header, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            if len(header) == 1 and re.search("[;,\t|]", header[0]):
                hint += "is the `delimiter` right? "
            raise MappingError(
                f"{source} line 1: the header has no column {column!r} (for `{where}`); "
                f"{hint}the header has: {', '.join(map(repr, header))}"
            )
    return index


def _cell(row: list[str], index: dict[str, int], column: str) -> str | None:
    i = index.get(column)
    return None if i is None else (row[i].strip() or None)


def _jsonl_rows(lines: _Lines, mapping: Mapping, source: str) -> Iterator[Row]:
    for _ in lines:
        line, raw, problem = lines.take()
        if problem is not None:
            yield line, raw, None, problem
            continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            yield line, raw, None, _Reject("row not JSON", str(exc))
            continue
        if not isinstance(obj, dict):
            yield line, raw, None, _Reject("row not a JSON object", f"got {shown(obj)}")
            continue
        yield line, raw, partial(_member, obj), None


def _member(obj: dict, column: str) -> Any:
    """A top-level key, or a dotted path into nested objects (`user.id`)."""
    value: Any = obj.get(column)
    if column not in obj and "." in column:
        value = obj
        for part in column.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        value = value.strip() or None
    return value


# ---------------------------------------------------------------- one row → one event

Get = Callable[[str], Any]


def _value(spec: Value, get: Get) -> Any:
    if spec.constant is not None:
        return spec.constant
    assert spec.column is not None  # `_one_source`: a column or a constant, never neither
    value = get(spec.column)
    return spec.default if value is None else value


def _where(spec: Value) -> str:
    return f"constant {spec.constant!r}" if spec.constant is not None else f"column {spec.column!r}"


def _text(value: Any, what: str, where: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _Reject(f"{what} not text", f"{where}: expected text, got {shown(value)}")
    return value


def _number(value: Any, what: str, where: str, whole: bool = False) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (whole and not number.is_integer()):
            raise ValueError
    except ValueError:
        raise _Reject(
            f"{what} not a number", f"{where}: {value!r} is not a {'whole ' if whole else ''}number"
        ) from None
    return int(number) if whole else number


def _time(spec: TimeSpec, get: Get) -> datetime:
    value, where = get(spec.column), f"column {spec.column!r}"
    if value is None:
        raise _Reject("time missing", f"{where} is empty")
    value = _text(value, "time", where)
    try:
        at = datetime.fromisoformat(value) if spec.format == "iso" else datetime.strptime(value, spec.format)
    except ValueError as exc:
        shape = "an ISO 8601 time" if spec.format == "iso" else f"a time in format {spec.format!r}"
        detail = "" if "does not match" in str(exc) or "isoformat" in str(exc) else f" ({exc})"
        raise _Reject("time unparsable", f"{where}: {value!r} is not {shape}{detail}") from None
    if at.tzinfo is None:
        if spec.zone is None:
            raise _Reject(
                "time without offset", f"{where}: {value!r} has no UTC offset and the mapping names no `time.timezone`"
            )
        at = at.replace(tzinfo=spec.zone)
    return at


def _kind(spec: KindSpec, get: Get) -> Touchpoint:
    if spec.constant is not None:
        return spec.constant
    assert spec.column is not None and spec.map is not None  # `_consistent`: no constant, so a column and its map
    value, where = get(spec.column), f"column {spec.column!r}"
    if value is None:
        raise _Reject("kind missing", f"{where} is empty")
    value = _text(value, "kind", where)
    if value in spec.ignore:
        raise _Ignored(value)
    if value not in spec.map:
        raise _Reject("kind not mapped", f"{where}: {value!r} is not in `kind.map` (nor in `kind.ignore`)")
    return spec.map[value]


def _order(m: Mapping, kind: Touchpoint, get: Get) -> dict | None:
    # Called only with an amount, and `_fits_together` makes an amount come with a currency.
    assert m.amount is not None and m.currency is not None
    value = _value(m.amount, get)
    if value is None:
        if kind in PAYLOAD_REQUIRED:
            raise _Reject("amount missing", f"a {kind.value} needs an amount; {_where(m.amount)} is empty")
        return None
    amount = _number(value, "amount", _where(m.amount))
    if m.amount_is_unit_price:
        assert m.quantity is not None  # `_fits_together`: a unit price needs a quantity
        quantity = _value(m.quantity, get)
        if quantity is None:
            raise _Reject("quantity missing", f"{_where(m.quantity)} is empty (amount is a unit price)")
        amount = round(amount * _number(quantity, "quantity", _where(m.quantity)), 6)
    currency = _value(m.currency, get)
    if currency is None:
        raise _Reject("currency missing", f"{_where(m.currency)} is empty")
    order = {"kind": "order", "amount": amount, "currency": _text(currency, "currency", _where(m.currency))}
    if m.discount is not None and (discount := _value(m.discount, get)) is not None:
        order["discount"] = _number(discount, "discount", _where(m.discount))
    if m.coupon is not None and (coupon := _value(m.coupon, get)) is not None:
        order["coupon"] = _text(coupon, "coupon", _where(m.coupon))
    return order


def _score(spec: ScoreSpec, kind: Touchpoint, get: Get) -> dict | None:
    score = {}
    for name in SCORES:
        column = getattr(spec, name)
        if column is not None and (value := get(column)) is not None:
            score[name] = _number(value, "score", f"column {column!r}", whole=name != "sentiment")
    if not score and kind in PAYLOAD_REQUIRED:
        columns = ", ".join(repr(getattr(spec, n)) for n in SCORES if getattr(spec, n))
        raise _Reject("score missing", f"a {kind.value} needs a score; columns {columns} are empty")
    return {"kind": "score", **score} if score else None


def _payload(m: Mapping, kind: Touchpoint, get: Get) -> dict | None:
    takes = PAYLOAD_ALLOWED.get(kind)
    if takes is OrderPayload and m.amount is not None:
        return _order(m, kind, get)
    if takes is ScorePayload and m.score is not None:
        return _score(m.score, kind, get)
    return None


def default_event_id(source: str, line: int, raw: str) -> str:
    """The same file name, line and row text always give the same id, so re-imports deduplicate."""
    return "imp_" + blake2b("\x1f".join((source, str(line), raw)).encode(), digest_size=16).hexdigest()


def _origin(m: Mapping, loc: tuple) -> str:
    """Which column or constant an event field came from (for rejection messages)."""
    name = str(loc[-1]) if loc else ""
    if name == "customer_id":
        return f"column {m.customer!r}"
    if name == "event_id" and m.event_id is not None:
        return f"column {m.event_id.column!r}"
    if name in SCORES and m.score is not None:
        return f"column {getattr(m.score, name)!r}"
    spec = getattr(m, name, None) if name in Mapping.model_fields else None
    return _where(spec) if isinstance(spec, Value) else "derived"


def map_row(m: Mapping, get: Get, source: str, line: int, raw: str) -> TouchpointEvent:
    """One row as an event; raises _Reject (with the column and value) or _Ignored."""
    kind = _kind(m.kind, get)
    customer = get(m.customer)
    if customer is None:
        raise _Reject("customer missing", f"column {m.customer!r} is empty")
    fields: dict[str, Any] = {
        "customer_id": _text(customer, "customer", f"column {m.customer!r}"),
        "occurred_at": _time(m.time, get),
        "touchpoint": kind,
        "stage": STAGE_OF[kind],
    }
    if m.event_id is None:
        fields["event_id"] = default_event_id(source, line, raw)
    elif (event_id := get(m.event_id.column)) is None:
        raise _Reject("event_id missing", f"column {m.event_id.column!r} is empty")
    else:
        fields["event_id"] = _text(event_id, "event_id", f"column {m.event_id.column!r}")
    for name in ("channel", "country", "language", "segment"):
        spec = getattr(m, name)
        if spec is not None and (value := _value(spec, get)) is not None:
            fields[name] = _text(value, name, _where(spec))
    if (payload := _payload(m, kind, get)) is not None:
        fields["payload"] = payload
    try:
        return TouchpointEvent.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if p not in ("order", "score"))
            field_ = ".".join(map(str, loc)) or "event"
            if error["type"] == "missing":
                problems.append(f"{field_} ({_origin(m, loc)}) is empty")
                continue
            value = f" {error['input']!r}" if loc else ""
            problems.append(f"{field_} ({_origin(m, loc)}){value}: {error['msg'].removeprefix('Value error, ')}")
        raise _Reject("event invalid", "; ".join(problems)) from None


def iter_mapped(path: str | Path, mapping: Mapping, counts: ImportCounts | None = None) -> Iterator[SourceRecord]:
    """Stream an export through a mapping: one record per row (event or error); ignored rows only count.

    Raises MappingError (on the first `next`) when the export does not fit the mapping at all,
    e.g. a CSV header without a column the mapping needs.
    """
    counts = ImportCounts() if counts is None else counts
    path = Path(path)
    rows = _csv_rows if mapping.format == "csv" else _jsonl_rows
    with path.open("rb") as fh:
        for line, raw, get, problem in rows(_Lines(fh, mapping.encoding, counts), mapping, path.name):
            counts.rows += 1
            try:
                if problem is not None:
                    raise problem
                assert get is not None  # a row reader gives a cell getter to every row without a problem
                event = map_row(mapping, get, path.name, line, raw)
            except _Ignored as ignored:
                counts.ignored += 1
                counts.ignored_values[str(ignored)] += 1
                continue
            except _Reject as rejected:
                counts.reject(rejected.reason, line, rejected.detail)
                yield SourceRecord(source=path.name, line=line, error=str(rejected), raw=raw)
                continue
            counts.mapped += 1
            yield SourceRecord(source=path.name, line=line, event=event, raw=raw)
