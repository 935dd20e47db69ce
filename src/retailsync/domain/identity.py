"""Identity resolution for the customer master: normalise, match, survive, propagate consent.

Pure rules, no I/O. A :class:`SourceCustomer` is one system's record of a person. Records are
compared by exact keys first (normalised e-mail, E.164 phone, a shared external id), then by
configurable fuzzy evidence on name and address, giving a score and a decision:

* ``same`` — score at or above ``auto_merge`` *and* a strong key agrees (same e-mail, phone or
  external id): the records are one person and are merged without asking;
* ``propose`` — score at or above ``propose`` (or high but without a strong key): a person
  confirms the merge; the hub never merges on weak evidence alone;
* ``different`` — below ``propose``: kept apart.

:func:`golden_values` applies survivorship rules (which system wins which field) and
:func:`plan_consent_updates` says which systems must hear of a consent change, once each.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from difflib import SequenceMatcher
from enum import StrEnum

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

from retailsync.domain.customers import ContactChannel

__all__ = [
    "ConsentChange",
    "ConsentUpdate",
    "MatchDecision",
    "MatchResult",
    "MatchRules",
    "SourceCustomer",
    "Survivorship",
    "compare",
    "golden_values",
    "match_keys",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
    "normalise_postcode",
    "plan_consent_updates",
]


# ---- normalisers ----------------------------------------------------------------------------


def normalise_email(raw: str | None, *, strip_plus_tag: bool = False) -> str | None:
    """Lower-cased, trimmed e-mail (``+tag`` in the local part removed when asked); None if bad."""
    if not raw:
        return None
    value = raw.strip().lower()
    if value.startswith("mailto:"):
        value = value[7:]
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or " " in value:
        return None
    if strip_plus_tag:
        local = local.split("+", 1)[0]
    return f"{local}@{domain}"


def normalise_phone(raw: str | None, default_region: str = "DE") -> str | None:
    """The number in E.164 (``+4930123456``), read with ``default_region`` when it has no ``+``."""
    if not raw or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if _E164.match(e164) else None


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # as Customer.phone accepts
_NON_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
_TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "herr", "frau"})


def normalise_name(*parts: str | None) -> str:
    """Case-folded, accent-free words without titles or punctuation: ``"Dr. José  Müller"``
    -> ``"jose muller"``."""
    text = " ".join(part for part in parts if part)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = _NON_WORD.sub(" ", text.replace("ß", "ss"))
    words = [word for word in _SPACES.split(text) if word and word not in _TITLES]
    return " ".join(words)


def normalise_postcode(raw: str | None) -> str | None:
    """Upper-case postcode without spaces or dashes."""
    if not raw:
        return None
    value = re.sub(r"[\s-]+", "", raw).upper()
    return value or None


# ---- records --------------------------------------------------------------------------------


class SourceCustomer(BaseModel):
    """One system's record of a customer, as its connector mapped it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str = Field(min_length=1, max_length=60)
    external_id: str = Field(min_length=1, max_length=200)
    email: str | None = None
    phone: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    company: str | None = None
    line1: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None
    linked_ids: dict[str, str] = Field(
        default_factory=dict, description="Ids this record carries for other systems."
    )
    consents: dict[ContactChannel, bool] = Field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Normalised:
    email: str | None
    phone: str | None
    name: str
    postcode: str | None
    street: str
    ids: frozenset[tuple[str, str]]


def _normalised(record: SourceCustomer, rules: MatchRules) -> _Normalised:
    ids = {(record.system, record.external_id)}
    ids.update(record.linked_ids.items())
    return _Normalised(
        email=normalise_email(record.email, strip_plus_tag=rules.strip_plus_tags),
        phone=normalise_phone(record.phone, rules.default_region),
        name=normalise_name(record.given_name, record.family_name),
        postcode=normalise_postcode(record.postal_code),
        street=normalise_name(record.line1),
        ids=frozenset(ids),
    )


def match_keys(record: SourceCustomer, rules: MatchRules | None = None) -> set[tuple[str, str]]:
    """Blocking keys that find candidate matches: exact keys and a name+postcode key."""
    rules = rules or MatchRules()
    norm = _normalised(record, rules)
    keys = {("id", f"{system}:{ext}") for system, ext in norm.ids}
    if norm.email:
        keys.add(("email", norm.email))
    if norm.phone:
        keys.add(("phone", norm.phone))
    family = normalise_name(record.family_name)
    if family and norm.postcode:
        keys.add(("name_postcode", f"{family}|{norm.postcode}"))
    if norm.name:
        keys.add(("name", norm.name))
    return keys


# ---- matching -------------------------------------------------------------------------------


class MatchRules(BaseModel):
    """Weights and thresholds of the matcher (configuration)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_region: str = "DE"
    strip_plus_tags: bool = False
    email_weight: float = 0.6
    phone_weight: float = 0.5
    external_id_weight: float = 1.0
    name_weight: float = 0.3
    address_weight: float = 0.25
    conflict_penalty: float = 0.15
    name_conflict_penalty: float = 0.4
    name_similarity_floor: float = Field(default=0.85, ge=0, le=1)
    auto_merge: float = Field(default=0.8, ge=0)
    propose: float = Field(default=0.45, ge=0)


class MatchDecision(StrEnum):
    SAME = "same"
    PROPOSE = "propose"
    DIFFERENT = "different"


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The score of two records being one person, the evidence, and the decision."""

    score: float
    strong: bool
    decision: MatchDecision
    evidence: tuple[str, ...] = field(default=())


def _similarity(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    tokens_a, tokens_b = " ".join(sorted(a.split())), " ".join(sorted(b.split()))
    return max(
        SequenceMatcher(None, a, b).ratio(), SequenceMatcher(None, tokens_a, tokens_b).ratio()
    )


def compare(a: SourceCustomer, b: SourceCustomer, rules: MatchRules | None = None) -> MatchResult:
    """How likely ``a`` and ``b`` are the same person (see the module docstring)."""
    rules = rules or MatchRules()
    na, nb = _normalised(a, rules), _normalised(b, rules)
    score = 0.0
    strong = False
    evidence: list[str] = []
    if na.ids & nb.ids:
        score += rules.external_id_weight
        strong = True
        evidence.append("shared external id")
    if na.email and nb.email:
        if na.email == nb.email:
            score += rules.email_weight
            strong = True
            evidence.append("same e-mail")
        else:
            score -= rules.conflict_penalty
            evidence.append("different e-mail")
    if na.phone and nb.phone:
        if na.phone == nb.phone:
            score += rules.phone_weight
            strong = True
            evidence.append("same phone")
        else:
            score -= rules.conflict_penalty
            evidence.append("different phone")
    if na.name and nb.name:
        similarity = _similarity(na.name, nb.name)
        if similarity >= rules.name_similarity_floor:
            score += rules.name_weight * similarity
            evidence.append(f"name {similarity:.2f}")
        elif similarity < 0.5:
            score -= rules.name_conflict_penalty
            evidence.append(f"different name ({similarity:.2f})")
    if na.postcode and nb.postcode:
        if na.postcode == nb.postcode:
            street = _similarity(na.street, nb.street) if na.street and nb.street else 0.5
            score += rules.address_weight * (0.5 + 0.5 * street)
            evidence.append(f"same postcode, street {street:.2f}")
        else:
            evidence.append("different postcode")
    if score >= rules.auto_merge and strong:
        decision = MatchDecision.SAME
    elif score >= rules.propose:
        decision = MatchDecision.PROPOSE
    else:
        decision = MatchDecision.DIFFERENT
    return MatchResult(round(score, 4), strong, decision, tuple(evidence))


# ---- survivorship ---------------------------------------------------------------------------

GOLDEN_FIELDS = (
    "email",
    "phone",
    "given_name",
    "family_name",
    "company",
    "line1",
    "city",
    "postal_code",
    "country",
)


class Survivorship(BaseModel):
    """Which system wins which field; fields not listed take the most recently updated value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_order: tuple[str, ...] = ("erp", "storefront", "service_desk")
    fields: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "email": ("storefront", "service_desk", "erp"),
            "phone": ("storefront", "erp", "service_desk"),
            "line1": ("erp", "storefront"),
            "city": ("erp", "storefront"),
            "postal_code": ("erp", "storefront"),
            "country": ("erp", "storefront"),
        }
    )


def golden_values(
    records: Sequence[SourceCustomer], rules: Survivorship | None = None, *, region: str = "DE"
) -> dict[str, str | None]:
    """The golden record's field values from each system's record under ``rules``.

    E-mail and phone are normalised. For each field the first system in the field's order
    (else ``default_order``) that has a value wins; systems not listed follow, most recently
    updated first.
    """
    rules = rules or Survivorship()
    by_recency = sorted(
        records,
        key=lambda r: (r.updated_at is not None, r.updated_at or datetime.min),
        reverse=True,
    )
    out: dict[str, str | None] = {}
    for name in GOLDEN_FIELDS:
        order = rules.fields.get(name, rules.default_order)
        ranked = sorted(
            by_recency,
            key=lambda r: order.index(r.system) if r.system in order else len(order),
        )
        value: str | None = None
        for record in ranked:
            raw = getattr(record, name)
            if name == "email":
                raw = normalise_email(raw)
            elif name == "phone":
                raw = normalise_phone(raw, region)
            if raw:
                value = raw
                break
        out[name] = value
    return out


# ---- consent propagation --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """A customer granted or withdrew consent for a channel, in ``source_system``."""

    golden_id: str
    channel: ContactChannel
    granted: bool
    changed_at: datetime
    source_system: str


@dataclass(frozen=True, slots=True)
class ConsentUpdate:
    """One system that must be told of a consent change; ``id`` makes it happen once."""

    id: str
    golden_id: str
    system: str
    external_id: str
    channel: ContactChannel
    granted: bool
    changed_at: datetime


def plan_consent_updates(
    change: ConsentChange,
    links: Mapping[str, Iterable[str]],
    *,
    already_planned: Iterable[str] = (),
) -> list[ConsentUpdate]:
    """Every (system, id) linked to the customer except where the change came from, once each.

    ``links`` maps each system to the customer's ids there. Update ids derive from the change
    and the target, so planning the same change again yields nothing new.
    """
    seen = set(already_planned)
    planned: list[ConsentUpdate] = []
    for system in sorted(links):
        if system == change.source_system:
            continue
        for external_id in sorted(set(links[system])):
            update_id = (
                "cst-"
                + hashlib.sha256(
                    "\x1f".join(
                        (
                            change.golden_id,
                            change.channel.value,
                            str(change.granted),
                            change.changed_at.isoformat(),
                            system,
                            external_id,
                        )
                    ).encode()
                ).hexdigest()[:40]
            )
            if update_id in seen:
                continue
            seen.add(update_id)
            planned.append(
                ConsentUpdate(
                    update_id,
                    change.golden_id,
                    system,
                    external_id,
                    change.channel,
                    change.granted,
                    change.changed_at,
                )
            )
    return planned
