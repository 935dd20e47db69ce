"""Canonical customers <-> Tryton parties (``party.party``, addresses, contact mechanisms)."""

from __future__ import annotations

from typing import Any

from retailsync.domain.customers import Address, Customer

PARTY_FIELDS = ("name", "code", "addresses", "contact_mechanisms", "active")
ADDRESS_FIELDS = ("party_name", "street", "postal_code", "city", "country")


def party_name(customer: Customer) -> str:
    """The name the ERP shows: person, else company, else e-mail, else the canonical id."""
    person = " ".join(part for part in (customer.given_name, customer.family_name) if part)
    return person or customer.company or customer.email or customer.id


def address_values(address: Address, country_id: int | None) -> dict[str, Any]:
    """``party.address`` values for a canonical address (line 2 joins the street)."""
    street = address.line1 if not address.line2 else f"{address.line1}\n{address.line2}"
    values: dict[str, Any] = {"street": street, "city": address.city}
    if address.postal_code:
        values["postal_code"] = address.postal_code
    if address.name:
        values["party_name"] = address.name
    if country_id is not None:
        values["country"] = country_id
    return values


def party_values(customer: Customer, country_ids: dict[str, int]) -> dict[str, Any]:
    """``party.party.create`` values: name, e-mail/phone contact mechanisms and addresses."""
    mechanisms = []
    if customer.email:
        mechanisms.append({"type": "email", "value": customer.email})
    if customer.phone:
        mechanisms.append({"type": "phone", "value": customer.phone})
    addresses = [address_values(a, country_ids.get(a.country)) for a in customer.addresses]
    values: dict[str, Any] = {"name": party_name(customer)}
    if mechanisms:
        values["contact_mechanisms"] = [["create", mechanisms]]
    values["addresses"] = [["create", addresses or [{}]]]
    return values


def same_address(record: dict[str, Any], address: Address) -> bool:
    """True when a ``party.address`` record is the canonical address (street, postcode, city)."""
    street = (record.get("street") or "").splitlines()
    return (
        bool(street)
        and street[0].strip().casefold() == address.line1.strip().casefold()
        and (record.get("city") or "").strip().casefold() == address.city.strip().casefold()
        and (record.get("postal_code") or "") == (address.postal_code or "")
    )
