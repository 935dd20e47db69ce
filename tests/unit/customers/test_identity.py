from __future__ import annotations

from datetime import UTC, datetime

from retailsync.domain.customers import ContactChannel
from retailsync.domain.identity import (
    ConsentChange,
    MatchDecision,
    SourceCustomer,
    Survivorship,
    compare,
    golden_values,
    normalise_email,
    normalise_name,
    normalise_phone,
    plan_consent_updates,
)

T = datetime(2026, 11, 22, tzinfo=UTC)

SHOP = SourceCustomer(
    system="storefront",
    external_id="7001",
    email="  Ada.Lovelace@Example.COM ",
    phone="+49 30 1234567",
    given_name="Ada",
    family_name="Lovelace",
    postal_code="10115",
    line1="Invalidenstraße 1",
    updated_at=T,
)
DESK = SourceCustomer(
    system="service_desk",
    external_id="zd-88",
    email="ada.lovelace@example.com",
    given_name="ADA",
    family_name="LOVELACE",
)
ERP = SourceCustomer(
    system="erp",
    external_id="party-12",
    phone="030 / 123 45 67",
    given_name="Ada",
    family_name="Lovelace",
    line1="Invalidenstrasse 1",
    postal_code="10115",
    city="Berlin",
)


def test_normalisers() -> None:
    assert normalise_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    assert normalise_email("a+news@x.org", strip_plus_tag=True) == "a@x.org"
    assert normalise_email("not-an-address") is None
    assert normalise_phone("030 / 123 45 67") == "+49301234567"
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert normalise_phone("12") is None
    assert normalise_name("Dr. José", "Müller-Straße") == "jose muller strasse"


def test_same_person_from_three_systems_matches_on_strong_keys() -> None:
    desk = compare(SHOP, DESK)
    assert desk.decision is MatchDecision.SAME and "same e-mail" in desk.evidence
    erp = compare(SHOP, ERP)
    assert erp.decision is MatchDecision.SAME and "same phone" in erp.evidence


def test_two_people_with_the_same_name_are_not_merged() -> None:
    other = SourceCustomer(
        system="storefront",
        external_id="7002",
        email="ada.l@another.net",
        phone="+49 89 7654321",
        given_name="Ada",
        family_name="Lovelace",
        postal_code="80331",
    )
    result = compare(SHOP, other)
    assert result.decision is MatchDecision.DIFFERENT
    assert "different e-mail" in result.evidence


def test_weak_evidence_is_only_proposed() -> None:
    same_name_same_address = SourceCustomer(
        system="erp",
        external_id="party-99",
        given_name="Ada",
        family_name="Lovelace",
        line1="Invalidenstr. 1",
        postal_code="10115",
    )
    result = compare(SHOP, same_name_same_address)
    assert not result.strong
    assert result.decision is MatchDecision.PROPOSE


def test_shared_email_with_a_different_name_is_not_merged_silently() -> None:
    partner = SourceCustomer(
        system="storefront",
        external_id="7003",
        email=SHOP.email,
        given_name="Charles",
        family_name="Babbage",
    )
    assert compare(SHOP, partner).decision is not MatchDecision.SAME


def test_survivorship_is_configuration() -> None:
    values = golden_values([SHOP, DESK, ERP])
    assert values["email"] == "ada.lovelace@example.com"
    assert values["phone"] == "+49301234567"
    assert values["line1"] == "Invalidenstrasse 1"  # the ERP wins addresses by default
    assert values["city"] == "Berlin"
    shop_first = Survivorship(fields={"line1": ("storefront", "erp")})
    assert golden_values([SHOP, ERP], shop_first)["line1"] == "Invalidenstraße 1"


def test_consent_change_is_planned_once_per_other_system() -> None:
    change = ConsentChange("cus_X", ContactChannel.MARKETING, False, T, "storefront")
    links = {"storefront": ["7001"], "service_desk": ["zd-88"], "erp": ["party-12"]}
    planned = plan_consent_updates(change, links)
    assert sorted((u.system, u.external_id) for u in planned) == [
        ("erp", "party-12"),
        ("service_desk", "zd-88"),
    ]
    again = plan_consent_updates(change, links, already_planned=[u.id for u in planned])
    assert again == []
