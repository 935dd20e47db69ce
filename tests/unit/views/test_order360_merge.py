"""Version-aware merging: newer overrides, older only fills gaps, unknowns never erase."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from retailsync.views.merge import is_newer, merge_facts


def test_a_newer_version_overrides() -> None:
    merged = merge_facts({"status": "dispatched", "carrier": "DHL"}, 1, {"status": "delivered"}, 3)
    assert merged.document == {"status": "delivered", "carrier": "DHL"}
    assert merged.version == 3 and merged.changed


def test_an_older_version_only_fills_what_is_unknown() -> None:
    merged = merge_facts({"status": "delivered"}, 3, {"status": "dispatched", "carrier": "DHL"}, 1)
    assert merged.document == {"status": "delivered", "carrier": "DHL"}
    assert merged.version == 3


def test_a_repeat_changes_nothing() -> None:
    document = {"status": "delivered", "carrier": "DHL"}
    assert not merge_facts(document, 3, {"status": "delivered"}, 3).changed


def test_values_an_event_does_not_carry_never_erase_known_ones() -> None:
    merged = merge_facts({"signed_by": "Ada"}, 1, {"signed_by": None, "status": "x"}, 2)
    assert merged.document == {"signed_by": "Ada", "status": "x"}


def test_unversioned_rows_take_any_version() -> None:
    assert is_newer(1, None) and is_newer(None, None)
    assert not is_newer(None, 1) and not is_newer(2, 2)


facts = st.dictionaries(st.sampled_from("abcd"), st.integers(0, 3), max_size=4)


@given(st.lists(st.tuples(facts, st.integers(1, 6)), min_size=1, max_size=6), st.randoms())
def test_the_highest_version_wins_whatever_the_arrival_order(updates, rng) -> None:
    def fold(sequence: list) -> dict:
        document, version = None, None
        for incoming, incoming_version in sequence:
            merged = merge_facts(document, version, incoming, incoming_version)
            document, version = merged.document, merged.version
        return document or {}

    shuffled = list(updates)
    rng.shuffle(shuffled)
    newest = max(v for _, v in updates)
    in_order, out_of_order = fold(sorted(updates, key=lambda u: u[1])), fold(shuffled)
    for incoming, version in updates:
        if version == newest and len([u for u in updates if u[1] == newest]) == 1:
            for key, value in incoming.items():
                assert in_order[key] == value == out_of_order[key]
    assert set(in_order) == set(out_of_order)
