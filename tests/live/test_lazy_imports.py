"""What start-up loads: ``import falproxy``, ``falproxy check`` and a production ``serve``
never import the fake fal (issue 11); fake mode does.

Each case runs in a fresh interpreter, since a module imported by another test would hide
the import under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

FAKE_MODULES = (
    "sorted(m for m in sys.modules if m == 'falproxy.fake' or m.startswith('falproxy.fake.'))"
)


def loaded_fake_modules(code: str, **env: str) -> list[str]:
    """The falproxy.fake modules loaded after running ``code`` in a new interpreter."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    script = f"import contextlib, io, json, sys\n{code}\nprint(json.dumps({FAKE_MODULES}))"
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return modules


def test_import_falproxy_loads_no_fake_module() -> None:
    assert loaded_fake_modules("import falproxy") == []


def test_check_command_loads_no_fake_module() -> None:
    code = (
        "from falproxy.standalone.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['check']) == 0"
    )
    assert loaded_fake_modules(code, FAL_KEY="id:secret") == []


def test_serve_with_a_key_loads_no_fake_module() -> None:
    """The parent's checks (apply_serve_flags) and a worker's app (app_from_env)."""
    code = (
        "import os\n"
        "from falproxy.standalone import cli, server\n"
        "args = cli.parser().parse_args(['serve', '--port', '1'])\n"
        "cli.apply_serve_flags(args, os.environ)\n"
        "server.app_from_env()"
    )
    assert loaded_fake_modules(code, FAL_KEY="id:secret") == []


def test_fake_mode_does_load_the_fake() -> None:
    code = (
        "from falproxy.standalone import server\n"
        "server.fake_app_from_env({'FALPROXY_FAKE_BASE': 'http://127.0.0.1:1'})"
    )
    assert "falproxy.fake" in loaded_fake_modules(code)
