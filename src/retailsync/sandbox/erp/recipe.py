"""Fill a freshly activated Tryton database with the sandbox's master data (own process).

Run as ``python -m retailsync.sandbox.erp.recipe --name DB --output seed.json`` with the
``TRYTOND_DATABASE__*`` environment pointing at the database; the launcher does that. It uses
proteus in-process and the helpers that ship with the Tryton modules, and writes the ids of
what it created (:class:`~retailsync.sandbox.erp.seed.SandboxSeed`) as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from retailsync.sandbox.erp import seed

COUNTRY_NAMES = {"GB": "United Kingdom", "US": "United States"}


def fiscal_year_span(today: dt.date) -> list[int]:
    """Calendar years with an open fiscal year: last year, this year and next year."""
    return [today.year - 1, today.year, today.year + 1]


def build(database: str, today: dt.date) -> seed.SandboxSeed:  # pragma: no cover - subprocess
    from proteus import Model
    from proteus import config as proteus_config
    from trytond.modules.account.tests.tools import create_chart, get_accounts
    from trytond.modules.account_invoice.tests.tools import create_payment_term
    from trytond.modules.company.tests.tools import create_company
    from trytond.modules.currency.tests.tools import get_currency

    config = proteus_config.set_trytond(database)

    currency = get_currency(seed.CURRENCY)
    Party = Model.get("party.party")
    company_party = Party(name=seed.COMPANY_NAME)
    company_party.save()
    create_company(party=company_party, currency=currency)
    company_id = config.context["company"]
    Company = Model.get("company.company")
    company = Company(company_id)

    create_chart(company)
    accounts = get_accounts(company)

    fiscal_years = [_create_fiscal_year(company, year) for year in fiscal_year_span(today)]

    payment_term = create_payment_term()
    payment_term.name = seed.PAYMENT_TERM_NAME
    payment_term.save()

    Category = Model.get("product.category")
    category = Category(name="Merchandise")
    category.accounting = True
    category.account_expense = accounts["expense"]
    category.account_revenue = accounts["revenue"]
    category.save()

    Uom = Model.get("product.uom")
    (unit,) = Uom.find([("name", "=", "Unit")])
    Template = Model.get("product.template")
    products: dict[str, int] = {}
    for item in seed.PRODUCTS:
        template = Template()
        template.name = item.name
        template.code = item.sku
        template.default_uom = unit
        template.sale_uom = unit
        template.type = "goods"
        template.salable = True
        template.list_price = item.list_price
        template.account_category = category
        template.save()
        (product,) = template.products
        product.cost_price = item.cost_price
        product.save()
        products[item.sku] = product.id

    Location = Model.get("stock.location")
    (lost_found,) = Location.find([("type", "=", "lost_found")])
    lost_found.code = seed.LOST_FOUND
    lost_found.save()
    locations = {code: Location.find([("code", "=", code)])[0].id for code in seed.LOCATION_CODES}

    Inventory = Model.get("stock.inventory")
    inventory = Inventory()
    inventory.location = Location(locations[seed.STORAGE])
    for item in seed.PRODUCTS:
        if item.stock:
            line = inventory.lines.new(product=Model.get("product.product")(products[item.sku]))
            line.quantity = float(item.stock)
            line.expected_quantity = 0.0
    inventory.click("confirm")
    if inventory.state != "done":
        raise RuntimeError(f"initial inventory ended in state {inventory.state!r}, not 'done'")

    Country = Model.get("country.country")
    countries: dict[str, Any] = {}
    for code, name in COUNTRY_NAMES.items():
        country = Country(name=name, code=code)
        country.save()
        countries[code] = country

    customers: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for person in seed.CUSTOMERS:
        party = Party(name=person.name)
        party.contact_mechanisms.new(type="email", value=person.email)
        party.save()
        (address,) = party.addresses
        address.street = person.street
        address.postal_code = person.postal_code
        address.city = person.city
        address.country = countries[person.country]
        address.save()
        customers[person.email] = party.id
        addresses[person.email] = address.id

    IrModel = Model.get("ir.model")
    (sale_model,) = IrModel.find([("name", "=", "sale.sale")])
    ComplaintType = Model.get("sale.complaint.type")
    complaint_type = ComplaintType(name=seed.COMPLAINT_TYPE_NAME, origin=sale_model)
    complaint_type.save()

    return seed.SandboxSeed(
        company_id=company_id,
        currency_id=currency.id,
        currency=seed.CURRENCY,
        payment_term_id=payment_term.id,
        complaint_type_id=complaint_type.id,
        fiscal_years=fiscal_years,
        products=products,
        customers=customers,
        addresses=addresses,
        locations=locations,
        initial_stock={item.sku: item.stock for item in seed.PRODUCTS},
    )


def _create_fiscal_year(company: Any, year: int) -> int:  # pragma: no cover - subprocess
    from proteus import Model
    from trytond.modules.account_invoice.tests.tools import set_fiscalyear_invoice_sequences

    FiscalYear = Model.get("account.fiscalyear")
    Sequence = Model.get("ir.sequence.strict")
    SequenceType = Model.get("ir.sequence.type")
    (move_type,) = SequenceType.find([("name", "=", "Account Move")], limit=1)
    move_sequence = Sequence(name=f"Moves {year}", sequence_type=move_type, company=company)
    move_sequence.save()
    fiscal_year = FiscalYear(
        name=str(year),
        start_date=dt.date(year, 1, 1),
        end_date=dt.date(year, 12, 31),
        company=company,
        move_sequence=move_sequence,
    )
    set_fiscalyear_invoice_sequences(fiscal_year)
    fiscal_year.save()
    fiscal_year.click("create_period")
    return int(fiscal_year.id)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - subprocess
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="Tryton database name")
    parser.add_argument("--output", required=True, type=Path, help="where to write the ids")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today())
    options = parser.parse_args(argv)
    result = build(options.name, options.today)
    options.output.write_text(result.to_json(), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    main()
