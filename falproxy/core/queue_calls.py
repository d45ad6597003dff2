"""What a call does to fal's queue and runs, as far as ownership and budgets care.

Pure: from the validated target, its app id (``core/policy.py``) and the method, name the
kind of call (:class:`CallKind`) and, for a request-scoped queue URL, the request id
(docs/fal-protocol.md §3, §7: ``[ns/]owner/alias/requests/<id>[/tail]``).
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from falproxy.core.policy import APP_HOSTS, QUEUE_HOST
from falproxy.core.targets import Target

# The tail of a request-scoped URL that reads the result (docs/fal-protocol.md §7.4).
RESULT_TAIL: Final = ""


class CallKind(Enum):
    SUBMIT = "submit"  # POST to queue.fal.run/<endpoint>: new work, answered with an id
    RUN = "run"  # a call to an app on fal.run (sync run, /stream) or a realtime socket
    READ = "read"  # status, status stream, logs or cancel of a queued request
    RESULT = "result"  # the result of a queued request
    OTHER = "other"  # REST calls (storage, tokens), or no app


def classify(target: Target, app_id: str | None, method: str) -> tuple[CallKind, str | None]:
    """The kind of call and, for a request-scoped queue URL, its request id."""
    if app_id is None or target.host not in APP_HOSTS:
        return CallKind.OTHER, None
    if target.host != QUEUE_HOST:
        return CallKind.RUN, None
    rest = target.path[len(app_id) + 2 :].removesuffix("/").split("/")
    if len(rest) >= 2 and rest[0] == "requests" and rest[1]:
        tail = "/".join(rest[2:])
        return (CallKind.RESULT if tail == RESULT_TAIL else CallKind.READ), rest[1]
    return (CallKind.SUBMIT if method == "POST" else CallKind.OTHER), None
