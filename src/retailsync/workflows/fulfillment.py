"""fulfillment workflow."""

from __future__ import annotations
