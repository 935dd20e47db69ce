"""Customers: identity, addresses, account status, and consent to be contacted per channel."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from retailsync.domain.base import CanonicalModel, CountryCode, ShortText, Timestamp, Version
from retailsync.domain.identifiers import CustomerId

__all__ = [
    "AccountStatus",
    "Address",
    "AddressRole",
    "Consent",
    "ContactChannel",
    "ContactPreferences",
    "Customer",
    "EmailAddress",
    "PhoneNumber",
]

EmailAddress = Annotated[
    str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,185}\.[A-Za-z]{2,10}$")
]
"""An e-mail address (shape check only; deliverability is the service desk's business)."""

PhoneNumber = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
"""A phone number in E.164 form, e.g. ``+4930123456``."""


class AddressRole(StrEnum):
    """What an address is used for."""

    BILLING = "billing"
    SHIPPING = "shipping"


class Address(CanonicalModel):
    """A postal address."""

    role: AddressRole
    name: ShortText | None = None
    line1: ShortText
    line2: ShortText | None = None
    city: ShortText
    region: ShortText | None = None
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    country: CountryCode


class ContactChannel(StrEnum):
    """A way the retailer may contact a customer, each with its own consent."""

    EMAIL = "email"
    SMS = "sms"
    MARKETING = "marketing"


class Consent(CanonicalModel):
    """Whether a customer agreed to one contact channel, since when and where it was given."""

    granted: bool = False
    updated_at: Timestamp | None = None
    source: ShortText | None = None


class ContactPreferences(CanonicalModel):
    """Consent per contact channel."""

    email: Consent = Field(default_factory=Consent)
    sms: Consent = Field(default_factory=Consent)
    marketing: Consent = Field(default_factory=Consent)

    def for_channel(self, channel: ContactChannel) -> Consent:
        """The consent for ``channel``."""
        consent: Consent = getattr(self, channel.value)
        return consent


class AccountStatus(StrEnum):
    """Whether the customer may order (as the ERP sees it)."""

    ACTIVE = "active"
    ON_HOLD = "on_hold"
    BLOCKED = "blocked"
    CLOSED = "closed"


class Customer(CanonicalModel):
    """A customer, as the hub keeps it in step across commerce, service desk and ERP."""

    id: CustomerId
    version: Version = 1
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    given_name: ShortText | None = None
    family_name: ShortText | None = None
    company: ShortText | None = None
    account_status: AccountStatus = AccountStatus.ACTIVE
    addresses: list[Address] = Field(default_factory=list, max_length=50)
    preferences: ContactPreferences = Field(default_factory=ContactPreferences)
    created_at: Timestamp

    def change_consent(
        self,
        channel: ContactChannel,
        *,
        granted: bool,
        at: Timestamp,
        source: str | None = None,
    ) -> Customer:
        """A copy with the consent for ``channel`` set, stamped with ``at``; version bumped."""
        consent = Consent(granted=granted, updated_at=at, source=source)
        preferences = self.preferences.model_copy(update={channel.value: consent})
        return self.model_copy(update={"preferences": preferences, "version": self.version + 1})
