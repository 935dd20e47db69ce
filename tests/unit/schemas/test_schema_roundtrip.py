"""Every canonical model and event type round-trips through JSON and fits its exported schema.

Strategies are built from the registries, so a newly added model or event type is covered here
without writing a test for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from retailsync.domain import CANONICAL_MODELS, EVENT_CATALOGUE
from retailsync.schemas import export_schemas
from retailsync.schemas.layout import ENVELOPE_PATH, event_schema_path, model_schema_path
from retailsync.schemas.strategies import cloud_events, strategy_for

PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPECS = list(EVENT_CATALOGUE.values())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("schemas")
    export_schemas(directory)
    return directory


_validators: dict[Path, Draft202012Validator] = {}


def validator(path: Path) -> Draft202012Validator:
    if path not in _validators:
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        _validators[path] = Draft202012Validator(schema)
    return _validators[path]


def assert_valid(path: Path, document: Any) -> None:
    errors = sorted(validator(path).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, f"{path.name}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
    )


@pytest.mark.parametrize("model", CANONICAL_MODELS, ids=[m.__name__ for m in CANONICAL_MODELS])
@PROPERTY
@given(data=st.data())
def test_every_model_round_trips_and_fits_its_schema(
    model: type[BaseModel], data: st.DataObject, exported: Path
) -> None:
    instance = data.draw(strategy_for(model))
    text = instance.model_dump_json()
    assert model.model_validate_json(text) == instance
    assert_valid(exported / model_schema_path(model), json.loads(text))


@pytest.mark.parametrize("spec", SPECS, ids=[s.event_type for s in SPECS])
@PROPERTY
@given(data=st.data())
def test_every_event_round_trips_and_fits_its_schemas(
    spec: Any, data: st.DataObject, exported: Path
) -> None:
    event = data.draw(cloud_events(spec.payload))
    text = event.model_dump_json()
    payload = spec.payload.model_validate_json(json.dumps(event.data))
    assert payload.model_dump(mode="json") == event.data
    assert spec.payload.model_validate_json(payload.model_dump_json()) == payload
    assert_valid(exported / event_schema_path(spec.event_type), json.loads(text)["data"])
    assert_valid(exported / ENVELOPE_PATH, event.to_json_dict())
    assert_valid(exported / ENVELOPE_PATH, json.loads(text))


@pytest.mark.parametrize("spec", SPECS, ids=[s.event_type for s in SPECS])
def test_schema_rejects_data_with_a_missing_required_field(spec: Any, exported: Path) -> None:
    path = exported / event_schema_path(spec.event_type)
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$id"] == spec.dataschema
    assert schema["x-retailsync-schema-version"] == spec.version
    assert schema["required"], f"{spec.event_type} has no required field"
    assert not validator(path).is_valid({})
