"""ISO 4217 currency codes, from a maintained list (pycountry's copy of the ISO data) rather than our own.

Read once, on first use: most processes that import the schemas never see an order.
"""

from __future__ import annotations

from functools import cache

import pycountry


@cache
def iso4217_codes() -> frozenset[str]:
    """Every current ISO 4217 alphabetic code (EUR, USD, JPY, …; also the X codes such as XAU)."""
    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


def is_currency(code: str) -> bool:
    """Whether `code` is a current ISO 4217 alphabetic code (upper case, as the standard writes them)."""
    return code in iso4217_codes()


def check_currency(code: str) -> str:
    """`code` itself, or a ValueError naming it when it is not an ISO 4217 code (for pydantic validators)."""
    if not is_currency(code):
        raise ValueError(f"{code!r} is not an ISO 4217 currency code (such as EUR, USD, JPY)")
    return code
