"""A ``falproxy serve`` worker settles its collector once its app is built (standalone/heap.py).

Checked in a fresh interpreter: the test process's own collector is left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys

from falproxy.standalone.heap import YOUNG_OBJECTS

PROBE = """
import gc, json
from falproxy.standalone.server import app_from_env
before = gc.get_threshold()[0]
app_from_env({"FAL_KEY": "id:secret"})
print(json.dumps([before, gc.get_threshold()[0], gc.get_freeze_count()]))
"""


def test_a_worker_freezes_its_start_up_heap_and_collects_young_objects_less_often() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    before, after, frozen = json.loads(result.stdout.splitlines()[-1])
    assert before == 700 and after == YOUNG_OBJECTS
    assert frozen > 10_000  # modules, settings and the app: out of every later collection
