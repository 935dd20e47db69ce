"""The canonical retail model: entities, value objects, lifecycles, events and policies.

Pure Python and Pydantic only: no I/O, no framework, no imports from any other
``retailsync`` package. Everything else in the hub imports from here, never the reverse.
"""
