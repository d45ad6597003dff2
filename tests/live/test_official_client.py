"""The official @fal-ai/client, from npm, end to end through falproxy to the fake.

The client is installed into a cache folder outside the repository (once per version);
the test needs Node and npm and skips, saying so, only when Node is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY_SECRET

CLIENT_VERSION = "1.10.1"
SCRIPT = Path(__file__).parent.parent / "node" / "official_client.mjs"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "falproxy-tests"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="Node.js and npm are not installed: the official-client test cannot run",
)


@pytest.fixture(scope="module")
def client_dir() -> Path:
    folder = CACHE / f"fal-client-{CLIENT_VERSION}"
    if not (folder / "node_modules" / "@fal-ai" / "client").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"private": true, "type": "module"}')
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                f"@fal-ai/client@{CLIENT_VERSION}",
            ],
            cwd=folder,
            check=True,
            timeout=300,
        )
    shutil.copy(SCRIPT, folder / SCRIPT.name)
    return folder


def test_official_client_through_proxy(client_dir: Path, proxy_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAL_")}
    completed = subprocess.run(
        ["node", SCRIPT.name, f"{proxy_url}/api/fal/proxy"],
        cwd=client_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert TEST_KEY_SECRET not in completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    failures = {name: step for name, step in report.items() if not step["ok"]}
    assert not failures, failures
    values = {name: step["value"] for name, step in report.items()}
    assert values["run"]["images"] == 1 and values["run"]["width"] == 512
    assert values["run"]["requestId"]
    assert values["subscribe_polling"]["updates"][-1] == "COMPLETED"
    assert "IN_PROGRESS" in values["subscribe_polling"]["updates"]
    assert values["subscribe_streaming"]["images"] == 1
    assert values["stream"]["events"] >= 2 and values["stream"]["final_images"] == 1
    assert values["queue"]["statuses"][-1] == "COMPLETED" and values["queue"]["images"] == 1
    assert values["cancel"]["status"] == "COMPLETED"
    assert values["storage_upload"]["body"] == "hello from node"
    assert values["validation_error"] == {"thrown": True, "status": 422, "name": "ValidationError"}
