"""The event contract published in docs/schemas stays backward compatible with the code.

After a deliberate, compatible change, refresh it with `retailsync schemas export docs/schemas`.
A breaking change needs a new schema version for the event type instead.
"""

from __future__ import annotations

from pathlib import Path

from retailsync.schemas import check_compatibility, current_schemas, load_schemas

BASELINE = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def test_code_is_backward_compatible_with_the_published_schemas() -> None:
    breaking = check_compatibility(BASELINE)
    assert breaking == [], "\n".join(str(change) for change in breaking)


def test_published_schemas_are_current() -> None:
    published = load_schemas(BASELINE)
    assert published == current_schemas(), (
        "docs/schemas is out of date: run `retailsync schemas export docs/schemas`"
    )
