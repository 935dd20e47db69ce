"""Workflow integration tests share the file-backed port fakes of the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

FAKES_DIR = Path(__file__).resolve().parents[2] / "unit" / "workflows"
if str(FAKES_DIR) not in sys.path:
    sys.path.insert(0, str(FAKES_DIR))
