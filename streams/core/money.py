"""Money in one currency: order amounts taken into the currency the state keeps spend in.

A customer's total spend is one number, so every order is added in one currency (the setting
`JOURNEY_CURRENCY`). An order in another currency is converted with the rate a rates file gives
(`JOURNEY_CURRENCY_RATES_FILE`), or refused, naming its currency, when the file gives none:
adding 10 EUR and 1,000,000 JPY into one total would be worse than leaving the order out. There is
one rate per currency, fixed for the run, so the same settings give the same conversions in the
live worker and in an offline replay (both take the `Money` from the `Model`). An order whose
amount in the state's currency is above the largest order amount (`JOURNEY_MAX_ORDER_AMOUNT`) is
refused too: with that bound, no count of orders a customer could make adds up past what a float
holds, so a total can never become infinite and unreadable.

The rates file, written by people, is checked like the rules file, every problem with its line:

    version: 1
    currency: EUR        # what the rates convert into: must be JOURNEY_CURRENCY
    rates:               # 1 unit of each currency is worth this many EUR
      USD: 0.92
      JPY: 0.0061
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from schemas import OrderPayload
from schemas.currencies import check_currency, is_currency
from schemas.touchpoint import MAX_AMOUNT
from streams.yamlfile import custom_error, validated_yaml

#: The state's currency unless a setting says otherwise: the bundled sample's.
DEFAULT_CURRENCY = "EUR"
#: Largest order amount in the state's currency unless a setting says otherwise. Set it higher for a
#: currency of small units (JPY, KRW, IDR, …).
DEFAULT_MAX_ORDER_AMOUNT = 1_000_000.0
#: Bounds of a rate: wider than the ratio of any two currencies' units.
MIN_RATE, MAX_RATE = 1e-9, 1e9
#: Decimals a converted amount is rounded to (it is stored in every state that holds it).
DECIMALS = 6


class CurrencyError(ValueError):
    """A currency setting or rates file that cannot be used; the message names the line and what is wrong."""


Code = Annotated[str, AfterValidator(check_currency)]
Rate = Annotated[float, Field(gt=MIN_RATE, le=MAX_RATE, strict=True, allow_inf_nan=False)]


class RatesFile(BaseModel):
    """The rates file: into which currency, and one rate per other currency."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    currency: Code
    rates: dict[str, Rate]

    @model_validator(mode="after")
    def _codes_and_base(self, info: ValidationInfo) -> RatesFile:
        expected = (info.context or {}).get("currency")
        if expected is not None and self.currency != expected:
            raise custom_error(
                f"the rates convert into {self.currency}, but the state keeps spend in {expected} "
                "(JOURNEY_CURRENCY): give rates into it",
                at="currency",
            )
        for code, rate in self.rates.items():
            if not is_currency(code):
                raise custom_error(
                    f"{code!r} is not an ISO 4217 currency code (such as EUR, USD, JPY)", at=f"rates.{code}"
                )
            if code == self.currency and rate != 1:
                raise custom_error(
                    f"{code} is the currency the rates convert into: its rate can only be 1", at=f"rates.{code}"
                )
        return self


@dataclass(frozen=True, slots=True)
class Money:
    """The state's currency, the rates into it, and the largest order amount (in it)."""

    currency: str = DEFAULT_CURRENCY
    rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    max_order_amount: float = DEFAULT_MAX_ORDER_AMOUNT
    #: Where the rates come from, for messages: the file's name, or None without a file.
    source: str | None = None

    def amount(self, order: OrderPayload) -> float | str:
        """The order's amount in the state's currency, or why it cannot be taken (a dead-letter reason)."""
        if order.currency == self.currency:
            amount = order.amount
            shown = f"{_figure(amount)} {self.currency}"
        else:
            rate = self.rates.get(order.currency)
            if rate is None:
                where = (
                    f"the rates file {self.source}" if self.source else "no rates file (JOURNEY_CURRENCY_RATES_FILE)"
                )
                return (
                    f"payload.currency: no rate from {order.currency} to {self.currency} in {where}: "
                    f"add one, or send orders in {self.currency}"
                )
            amount = round(order.amount * rate, DECIMALS)
            shown = f"{_figure(order.amount)} {order.currency} ({_figure(amount)} {self.currency})"
        if amount > self.max_order_amount:
            return (
                f"payload.amount: {shown} is above the largest order amount, "
                f"{_figure(self.max_order_amount)} {self.currency} (JOURNEY_MAX_ORDER_AMOUNT)"
            )
        return amount


def _figure(amount: float) -> str:
    """An amount as people write it: 1000000, 12.5, 0.000061 (no exponent)."""
    return f"{amount:.{DECIMALS}f}".rstrip("0").rstrip(".")


def load_money(
    currency: str = DEFAULT_CURRENCY,
    rates_file: str | Path | None = None,
    max_order_amount: float = DEFAULT_MAX_ORDER_AMOUNT,
) -> Money:
    """The `Money` of these settings; a bad code, bound or rates file raises CurrencyError naming it (and the line)."""
    if not is_currency(currency):
        raise CurrencyError(f"JOURNEY_CURRENCY: {currency!r} is not an ISO 4217 currency code (such as EUR, USD, JPY)")
    if not 0 < max_order_amount <= MAX_AMOUNT:
        raise CurrencyError(f"JOURNEY_MAX_ORDER_AMOUNT: {max_order_amount!r} must be above 0 and at most {MAX_AMOUNT}")
    if rates_file is None:
        return Money(currency, max_order_amount=max_order_amount)
    path = Path(rates_file)
    spec: Any = validated_yaml(path, RatesFile, CurrencyError, " (version, currency, rates)", {"currency": currency})
    rates = MappingProxyType({code: float(rate) for code, rate in spec.rates.items()})
    return Money(currency, rates, max_order_amount, path.name)
