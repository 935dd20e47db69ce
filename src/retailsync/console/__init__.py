"""The operations console: server-rendered pages under ``/console`` for people, not programs.

``routes`` is the router (``/console``), ``session`` the signed login cookie and CSRF tokens,
``pages`` which page needs which scope, ``queries`` the read-only views over the exception
queue, events, workflows and reconciliation runs, ``order360`` the agent panel's view of one
order. Templates (Jinja2) and static files (CSS, a vendored htmx, a few lines of our own JS)
live beside them; every page reads without JavaScript.
May import ``retailsync.api`` (scopes, clients), ``retailsync.bus``, ``retailsync.workflows``,
``retailsync.observability``, ``retailsync.reconcile`` and ``retailsync.resilience``; nothing
imports the console except the application that mounts it.
"""
