"""The demo a newcomer runs first: every system on a laptop, a scenario, a verified summary.

``environment`` starts the Tryton ERP sandbox and the SaaS sandboxes on free loopback ports and
builds the hub's settings for them; ``seed`` fills a small store idempotently; ``scenario``
plays the retail story through the hub's public edges (signed webhooks, the process API);
``verify`` asks each system itself what happened; ``summary`` prints the table; ``runner``
ties it together (:func:`run_demo`). May import anything in ``retailsync`` (it sits on top,
like the CLI); nothing imports it except the CLI.
"""

from __future__ import annotations

from retailsync.demo.runner import run_demo

__all__ = ["run_demo"]
