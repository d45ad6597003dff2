"""A fake fal.ai upstream that speaks the wire protocol well enough for the official clients.

Serve it with :func:`run_fake`, or mount :func:`create_fake_app` behind a proxy whose upstream
mapping sends ``fal.run`` to ``/run``, ``queue.fal.run`` to ``/queue`` and ``rest.fal.ai`` to
``/rest``. Scenarios are chosen through endpoint ids of owner ``fake`` (``fake/fail-500``);
``GET /__fake__/stats`` shows what arrived.
"""

from __future__ import annotations

from .app import create_fake_app
from .server import run_fake

__all__ = ["create_fake_app", "run_fake"]
