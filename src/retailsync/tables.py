"""Imports every package's table declarations so ``retailsync.db.metadata`` is complete."""

from __future__ import annotations

import importlib
import pkgutil

import retailsync

TABLE_MODULES = ("retailsync.xref", "retailsync.connectors.ingress")


def _discover() -> list[str]:
    names = list(TABLE_MODULES)
    for module in pkgutil.walk_packages(retailsync.__path__, prefix="retailsync."):
        if module.name.endswith(".tables") and module.name != __name__:
            names.append(module.name)
    return names


for _name in _discover():
    importlib.import_module(_name)
