"""What a ``falproxy serve`` worker holds once its app is built: a settled collector
(standalone/heap.py), and no rate-limit library unless rate limits are configured.

Checked in fresh interpreters: the test process's own state is left alone.
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


LIMITS_PROBE = """
import json, sys
from falproxy.standalone.server import app_from_env
app_from_env({"FAL_KEY": "id:secret", **json.loads(sys.argv[1])})
print(json.dumps("limits" in sys.modules))
"""


def _limits_loaded(env: dict[str, str]) -> bool:
    command = [sys.executable, "-c", LIMITS_PROBE, json.dumps(env)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    loaded: bool = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_the_rate_limit_library_is_loaded_only_for_rate_limits() -> None:
    """4.5 MB of idle RSS (limits, wrapt, deprecated) a proxy without limits never uses."""
    assert not _limits_loaded({})
    assert _limits_loaded({"FALPROXY_RATE_LIMIT": "10/minute"})
    assert _limits_loaded({"FALPROXY_WS_MESSAGE_RATE": "10/second"})
