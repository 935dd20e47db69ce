"""Legacy batch files: a CSV drop folder of inventory snapshots and order status changes.

``config`` (settings), ``tables`` (the ``batch_files`` ledger), ``mapping`` (CSV row ->
canonical event, pure), ``watcher`` (the polling drop-folder watcher: one pass with
``process_folder()``, or ``run()`` every N seconds). May import ``retailsync.domain``,
``retailsync.ports`` and ``retailsync.db``.
"""

from __future__ import annotations

from retailsync.connectors.batch.config import BatchSettings
from retailsync.connectors.batch.watcher import DropFolderWatcher, FileOutcome, RowError

__all__ = ["BatchSettings", "DropFolderWatcher", "FileOutcome", "RowError"]
