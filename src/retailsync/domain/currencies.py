"""ISO 4217 currencies the hub accepts, with the number of decimals (minor units) of each."""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["CURRENCY_MINOR_UNITS", "is_known_currency", "minor_units"]

_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMALS = "CLF UYW"
_TWO_DECIMALS = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
    "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR "
    "LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD "
    "PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN "
    "SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWG"
)


def _table() -> dict[str, int]:
    table: dict[str, int] = {}
    for codes, decimals in (
        (_ZERO_DECIMALS, 0),
        (_TWO_DECIMALS, 2),
        (_THREE_DECIMALS, 3),
        (_FOUR_DECIMALS, 4),
    ):
        for code in codes.split():
            table[code] = decimals
    return dict(sorted(table.items()))


CURRENCY_MINOR_UNITS: MappingProxyType[str, int] = MappingProxyType(_table())
"""Currency code -> number of decimals of its minor unit (JPY 0, EUR 2, KWD 3, CLF 4)."""


def is_known_currency(code: str) -> bool:
    """True when ``code`` is an ISO 4217 code in the table."""
    return code in CURRENCY_MINOR_UNITS


def minor_units(code: str) -> int:
    """Decimals of ``code``'s minor unit; :class:`KeyError` when the code is unknown."""
    return CURRENCY_MINOR_UNITS[code]
