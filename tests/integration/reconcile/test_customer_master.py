"""The customer master in SQL: three systems, one person; namesakes apart; consent once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retailsync.customers.master import CustomerMaster, UnknownProposal
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.customers import ContactChannel
from retailsync.domain.identity import ConsentUpdate, SourceCustomer
from retailsync.xref import links_for

T = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def master(request: pytest.FixtureRequest):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade_database(url)
    engine = create_engine_for(url)
    yield CustomerMaster(engine)
    engine.dispose()


def _ada(system: str, external_id: str, **fields: object) -> SourceCustomer:
    return SourceCustomer(system=system, external_id=external_id, **fields)  # type: ignore[arg-type]


def test_same_person_from_three_systems_is_one_golden_record(master: CustomerMaster) -> None:
    shop = master.ingest(
        _ada(
            "storefront",
            "7001",
            email="Ada.Lovelace@Example.com",
            phone="+49 30 1234567",
            given_name="Ada",
            family_name="Lovelace",
            consents={ContactChannel.MARKETING: True},
        ),
        now=T,
    )
    desk = master.ingest(
        _ada(
            "service_desk",
            "zd-88",
            email=" ada.lovelace@EXAMPLE.com",
            given_name="ADA",
            family_name="LOVELACE",
        ),
        now=T,
    )
    erp = master.ingest(
        _ada(
            "erp",
            "party-12",
            phone="030 1234567",
            given_name="Ada",
            family_name="Lovelace",
            line1="Invalidenstrasse 1",
            postal_code="10115",
            city="Berlin",
        ),
        now=T,
    )
    assert (shop.outcome, desk.outcome, erp.outcome) == ("new", "matched", "matched")
    assert shop.golden_id == desk.golden_id == erp.golden_id
    assert master.golden_ids() == [shop.golden_id]
    golden = master.golden(shop.golden_id)
    assert golden.values["email"] == "ada.lovelace@example.com"
    assert golden.values["phone"] == "+49301234567"
    assert golden.values["city"] == "Berlin"
    assert golden.links == {"erp": ["party-12"], "service_desk": ["zd-88"], "storefront": ["7001"]}
    with master.engine.connect() as connection:
        assert links_for(connection, shop.golden_id) == {
            "erp": "party-12",
            "service_desk": "zd-88",
            "storefront": "7001",
        }
    again = master.ingest(
        _ada(
            "erp",
            "party-12",
            phone="030 1234567",
            given_name="Ada",
            family_name="Lovelace",
            city="Potsdam",
        ),
        now=T,
    )
    assert again.outcome == "updated"
    assert master.golden(shop.golden_id).values["city"] == "Potsdam"


def test_two_people_with_the_same_name_stay_apart_and_weak_evidence_waits_for_a_person(
    master: CustomerMaster,
) -> None:
    first = master.ingest(
        _ada(
            "storefront",
            "1",
            email="ada@one.example",
            phone="+4930111111",
            given_name="Ada",
            family_name="Lovelace",
            postal_code="10115",
            line1="Invalidenstr. 1",
        )
    )
    second = master.ingest(
        _ada(
            "storefront",
            "2",
            email="ada@two.example",
            phone="+4989222222",
            given_name="Ada",
            family_name="Lovelace",
            postal_code="80331",
        )
    )
    assert second.outcome == "new" and second.golden_id != first.golden_id
    weak = master.ingest(
        _ada(
            "erp",
            "p-7",
            given_name="Ada",
            family_name="Lovelace",
            postal_code="10115",
            line1="Invalidenstrasse 1",
        )
    )
    assert weak.outcome == "proposed"
    assert len(master.golden_ids()) == 3  # nothing merged silently
    (proposal,) = master.open_proposals()
    survivor = master.confirm_merge(proposal.id, by="ops@example.com")
    assert survivor == first.golden_id
    assert sorted(master.golden_ids()) == sorted([first.golden_id, second.golden_id])
    assert master.golden(survivor).links == {"erp": ["p-7"], "storefront": ["1"]}
    with pytest.raises(UnknownProposal):
        master.confirm_merge(proposal.id, by="ops@example.com")


async def test_a_consent_opt_out_reaches_every_system_once(master: CustomerMaster) -> None:
    golden_id = master.ingest(
        _ada(
            "storefront", "7001", email="ada@example.com", given_name="Ada", family_name="Lovelace"
        )
    ).golden_id
    master.ingest(
        _ada(
            "service_desk",
            "zd-88",
            email="ada@example.com",
            given_name="Ada",
            family_name="Lovelace",
        )
    )
    master.ingest(
        _ada("erp", "party-12", email="ADA@example.com", given_name="Ada", family_name="Lovelace")
    )
    sent: list[ConsentUpdate] = []

    async def send(update: ConsentUpdate) -> None:
        sent.append(update)

    master.change_consent(
        golden_id, ContactChannel.MARKETING, granted=False, changed_at=T, source_system="storefront"
    )
    master.change_consent(
        golden_id, ContactChannel.MARKETING, granted=False, changed_at=T, source_system="storefront"
    )  # the same webhook, delivered twice
    assert await master.propagate_consent(send) == 2
    assert await master.propagate_consent(send) == 0
    assert sorted((u.system, u.granted) for u in sent) == [
        ("erp", False),
        ("service_desk", False),
    ]
    assert master.golden(golden_id).consents == {"marketing": False}
