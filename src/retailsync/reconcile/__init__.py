"""Reconciliation jobs, drift reports and the available-to-sell service.

``records`` (typed figures each source yields), ``merge`` (streaming k-way merge of sorted
sources), ``drift`` (pure drift classification per job), ``policy`` (owner rules: correction
or exception), ``corrections`` (correction events and exception tickets with derived ids),
``engine`` (one run: merge -> classify -> report -> corrections/exceptions), ``store`` and
``tables`` (drift reports in SQL), ``export`` (CSV / JSON), ``sources`` (adapters paging
through the ports, and CSV files), ``availability`` (pure available-to-sell state and push
decision), ``projection`` (the SQL-backed available-to-sell read model the bus feeds),
``exceptions`` (tickets into the bus exception queue), ``live_sources`` (the sources over the
wired ERP, warehouse, storefront and payment adapters), ``correctors`` (bus subscribers that
apply corrections), ``schedule`` (the background job of scheduled runs), ``api`` and ``cli``
(entrypoints).

May import ``retailsync.domain``, ``retailsync.ports``, ``retailsync.db``,
``retailsync.config``, ``retailsync.bus`` (intake, subscriptions) and ``retailsync.views``
(tables); ``api`` also imports ``retailsync.api``. Only ``live_sources`` imports connectors,
lazily, as wiring.
"""
