"""on_event hook: every finished call, as one JSON line, to an analytics sink.

Run: FAL_KEY=... ANALYTICS_FILE=events.jsonl uvicorn --factory examples.hooks_analytics:create_app
The event holds no URL query, header value or key (see falproxy/events.py), so it can
leave the process as it is. A real sink would batch to a queue or an HTTP collector;
a failing hook is logged and never affects the call.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import anyio

from falproxy import FalProxy, OnEvent, ProxyConfig, ProxyEvent
from falproxy.ops.logs import event_json


def jsonl_sink(path: Path) -> OnEvent:
    lock = anyio.Lock()

    async def write(event: ProxyEvent) -> None:
        async with lock, await anyio.open_file(path, "a") as file:
            await file.write(event_json(event) + "\n")

    return write


def create_app(config: ProxyConfig | None = None, path: Path | None = None) -> FalProxy:
    config = config or ProxyConfig.from_env()
    sink = jsonl_sink(path or Path(os.environ.get("ANALYTICS_FILE", "events.jsonl")))
    return FalProxy(dataclasses.replace(config, on_event=(sink,)))
