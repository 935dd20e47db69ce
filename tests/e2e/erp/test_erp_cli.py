"""The ``sandbox erp`` commands against the cached template."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from retailsync.connectors.erp.cli import app
from retailsync.sandbox.erp import ErpSandbox

pytestmark = [pytest.mark.erp]


def test_init_and_seed_report_the_cached_template(erp_sandbox: ErpSandbox) -> None:
    runner = CliRunner()
    init = runner.invoke(app, ["init"])
    assert init.exit_code == 0, init.output
    assert "found in cache" in init.output
    seed = runner.invoke(app, ["seed"])
    assert seed.exit_code == 0, seed.output
    assert json.loads(seed.output)["products"] == erp_sandbox.seed.products
