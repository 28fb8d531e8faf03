"""Amounts in a currency's minor units: the ISO 4217 exponent (the digits after the
decimal point) and the provider's formatting of a major-unit amount."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 currencies whose exponent is not 2 (every other code has 2)
EXPONENTS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
    "UYW": 4,
}
SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "ILS": "₪"}


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


def symbol(currency: str) -> str:
    return SYMBOLS.get(currency.upper(), currency.upper())


def to_major(minor: int, currency: str) -> Decimal:
    """``1050`` USD -> ``Decimal("10.50")``; ``1050`` JPY -> ``Decimal("1050")``."""
    places = exponent(currency)
    return (Decimal(minor) / (10**places)).quantize(Decimal(1).scaleb(-places))


def to_minor(major: Decimal, currency: str) -> int:
    return int(major.scaleb(exponent(currency)))


def decimals(amount: Decimal) -> int:
    """The decimal places a number was written with, trailing zeros not counted."""
    exp = amount.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def formatted(minor: int, currency: str) -> str:
    """A major-unit amount with the currency's decimals: ``"1.00"``, ``"100"``, ``"1.000"``."""
    return f"{to_major(minor, currency):f}"


def as_json_number(minor: int, currency: str) -> int | float:
    value = to_major(minor, currency)
    return int(value) if exponent(currency) == 0 else float(value)
