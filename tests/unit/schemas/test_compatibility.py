"""The compatibility checker: breaking changes are reported, optional additions pass."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retailsync.schemas import ChangeKind, check_compatibility, export_schemas
from retailsync.schemas.cli import app
from retailsync.schemas.layout import event_schema_path

ORDER_CREATED = event_schema_path("retailsync.order.created")
ORDER_CANCELLED = event_schema_path("retailsync.order.cancelled")
runner = CliRunner()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("baseline")
    export_schemas(directory)
    return directory


@pytest.fixture
def changed(baseline: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "changed"
    shutil.copytree(baseline, copy)
    return copy


def edit(directory: Path, relative: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / relative
    schema = json.loads(path.read_text(encoding="utf-8"))
    change(schema)
    path.write_text(json.dumps(schema), encoding="utf-8")


def add_field(required: bool, where: str | None = None) -> Callable[[dict[str, Any]], None]:
    def change(schema: dict[str, Any]) -> None:
        target = schema["$defs"][where] if where else schema
        target["properties"]["loyalty_tier"] = {"type": "string"}
        if required:
            target["required"].append("loyalty_tier")

    return change


def test_unchanged_code_is_compatible_with_its_own_export(baseline: Path) -> None:
    assert check_compatibility(baseline) == []
    result = runner.invoke(app, ["check", str(baseline)])
    assert result.exit_code == 0, result.output
    assert "compatible" in result.output


def test_a_new_required_field_is_breaking(baseline: Path, changed: Path) -> None:
    edit(changed, ORDER_CREATED, add_field(required=True, where="Order"))
    changes = check_compatibility(baseline, changed)
    assert [(c.schema, c.path, c.kind) for c in changes] == [
        (ORDER_CREATED, "order.loyalty_tier", ChangeKind.NEW_REQUIRED_FIELD)
    ]
    result = runner.invoke(app, ["check", str(baseline), "--against", str(changed)])
    assert result.exit_code == 1
    assert "1 breaking change" in result.output
    assert "retailsync.order.created.json order.loyalty_tier: new_required_field" in result.output


def test_a_new_optional_field_is_compatible(baseline: Path, changed: Path) -> None:
    edit(changed, ORDER_CREATED, add_field(required=False, where="Order"))
    edit(changed, ORDER_CANCELLED, add_field(required=False))
    assert check_compatibility(baseline, changed) == []
    result = runner.invoke(app, ["check", str(baseline), "--against", str(changed)])
    assert result.exit_code == 0, result.output


def test_the_current_code_is_checked_when_no_new_folder_is_given(changed: Path) -> None:
    # The published baseline lacked `reason`; the code now requires it: breaking.
    def drop_reason(schema: dict[str, Any]) -> None:
        del schema["properties"]["reason"]
        schema["required"].remove("reason")

    edit(changed, ORDER_CANCELLED, drop_reason)
    changes = check_compatibility(changed)
    assert [(c.path, c.kind) for c in changes] == [("reason", ChangeKind.NEW_REQUIRED_FIELD)]
    result = runner.invoke(app, ["check", str(changed)])
    assert result.exit_code == 1
    assert "retailsync.order.cancelled.json reason: new_required_field" in result.output


def remove_enum_value(schema: dict[str, Any]) -> None:
    schema["$defs"]["OrderStatus"]["enum"].remove("on_hold")


def change_type(schema: dict[str, Any]) -> None:
    schema["$defs"]["OrderLine"]["properties"]["quantity"] = {"type": "string"}


def remove_field(schema: dict[str, Any]) -> None:
    del schema["$defs"]["Order"]["properties"]["channel"]
    schema["$defs"]["Order"]["required"].remove("channel")


def forbid_null(schema: dict[str, Any]) -> None:
    schema["$defs"]["Order"]["properties"]["customer_id"] = {"type": "string"}


def require_existing(schema: dict[str, Any]) -> None:
    schema["$defs"]["Order"]["required"].append("customer_id")


@pytest.mark.parametrize(
    ("change", "path", "kind"),
    [
        (remove_enum_value, "order.status", ChangeKind.REMOVED_ENUM_VALUE),
        (change_type, "order.lines[].quantity", ChangeKind.TYPE_CHANGED),
        (remove_field, "order.channel", ChangeKind.REMOVED_FIELD),
        (forbid_null, "order.customer_id", ChangeKind.NULL_NO_LONGER_ALLOWED),
        (require_existing, "order.customer_id", ChangeKind.BECAME_REQUIRED),
    ],
)
def test_other_breaking_changes_are_reported(
    baseline: Path,
    changed: Path,
    change: Callable[[dict[str, Any]], None],
    path: str,
    kind: ChangeKind,
) -> None:
    edit(changed, ORDER_CREATED, change)
    changes = check_compatibility(baseline, changed)
    assert (ORDER_CREATED, path, kind) in [(c.schema, c.path, c.kind) for c in changes]


def test_a_new_enum_value_and_a_new_event_type_are_compatible(
    baseline: Path, changed: Path
) -> None:
    edit(changed, ORDER_CREATED, lambda s: s["$defs"]["OrderStatus"]["enum"].append("archived"))
    (changed / "events" / "retailsync.order.archived.json").write_text(
        json.dumps({"type": "object", "properties": {}, "required": []})
    )
    assert check_compatibility(baseline, changed) == []


def test_a_removed_event_type_is_breaking(baseline: Path, changed: Path) -> None:
    (changed / ORDER_CANCELLED).unlink()
    changes = check_compatibility(baseline, changed)
    assert [(c.schema, c.kind) for c in changes] == [
        (ORDER_CANCELLED, ChangeKind.REMOVED_EVENT_TYPE)
    ]


def test_cli_export_and_missing_baseline(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "asyncapi.json").is_file()
    missing = runner.invoke(app, ["check", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
