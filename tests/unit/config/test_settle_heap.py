"""The heap a started hub process settles: startup objects frozen, young collections spaced."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_settle_heap_freezes_what_is_alive_and_spaces_collections_out() -> None:
    # In a child process: a frozen heap would outlive every test of this one.
    script = textwrap.dedent(
        """
        import gc, json
        from retailsync.runtime import (
            OLDER_GENERATION_THRESHOLD, YOUNG_GENERATION_THRESHOLD, settle_heap,
        )
        before = gc.get_freeze_count()
        settle_heap()
        print(json.dumps({
            "before": before,
            "frozen": gc.get_freeze_count(),
            "threshold": list(gc.get_threshold()),
            "expected": [YOUNG_GENERATION_THRESHOLD, OLDER_GENERATION_THRESHOLD,
                         OLDER_GENERATION_THRESHOLD],
        }))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out)
    assert result["before"] == 0 and result["frozen"] > 1000
    assert result["threshold"] == result["expected"]
