"""The Dockerfile, verified without a container engine.

hadolint lints it. Then the image is reproduced as far as a machine without Docker allows:
the build stage's COPY and RUN lines run as written on a copy of the tree (producing the
wheel), the runtime stage's pip RUN lines install that wheel into a fresh virtual
environment, and the exact CMD, with the stage's ENV, serves in a network namespace of its
own, where its HEALTHCHECK command runs too. Only creating the image's user is not
reproduced (it needs the image's /etc); the USER line is checked instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY, TEST_KEY_SECRET
from tests.support.dockerfile import Stage, parse
from tests.support.image_venv import DOCKERFILE, ImageVenv
from tests.support.procs import REPO

HADOLINT = Path(sys.executable).parent / "hadolint"
EXPECTED_CMD = ["falproxy", "serve", "--host", "0.0.0.0", "--port", "8080"]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE)


def test_hadolint_passes() -> None:
    result = subprocess.run([HADOLINT, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    """A known-bad line must fail, or a green lint means nothing."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + "RUN pip install requests\n")
    result = subprocess.run([HADOLINT, str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3013" in result.stdout


def test_multi_stage_slim_runtime(stages: list[Stage]) -> None:
    assert len(stages) == 2 and stages[0].name == "build"
    build, runtime = stages
    assert all(stage.base.startswith("python:") for stage in stages)
    # The build stage compiles the hot path (the full image has gcc and the headers) and
    # must fail rather than ship pure Python; the runtime is slim, on the same Python.
    assert "-slim" not in build.base and runtime.base == f"{build.base}-slim"
    assert "FALPROXY_COMPILE=1 pip wheel" in " ".join(r.arguments for r in build.all("RUN"))
    assert all("--from=build" in copy.arguments for copy in runtime.all("COPY"))


def test_runs_as_fixed_non_root_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    user = runtime.last("USER").arguments
    assert user == "10001:10001"
    creates = " ".join(run.arguments for run in runtime.all("RUN"))
    assert "--uid 10001" in creates and "--gid 10001" in creates
    assert runtime.instructions[-1].keyword in ("CMD", "HEALTHCHECK")
    assert [i.keyword for i in runtime.instructions].index("USER") > max(
        index for index, i in enumerate(runtime.instructions) if i.keyword == "RUN"
    )


def test_default_command_health_check_and_no_key(stages: list[Stage]) -> None:
    runtime = stages[-1]
    assert runtime.last("CMD").exec_form() == EXPECTED_CMD
    assert "/healthz" in runtime.last("HEALTHCHECK").arguments
    assert runtime.last("EXPOSE").arguments == "8080"
    text = DOCKERFILE.read_text()
    for instruction in ("ENV", "ARG"):
        assert all("FAL_KEY" not in i.arguments for s in stages for i in s.all(instruction))
    assert "FAL_KEY=" not in text


def test_dockerignore_admits_only_the_package() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {line for line in lines if line.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!falproxy/",
    }


@pytest.fixture(scope="module")
def runtime_python(image: ImageVenv) -> Path:
    """A fresh venv holding the package exactly as the Dockerfile builds and installs it."""
    return image.python


def _stage_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for pair in instruction.arguments.split():
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def test_image_command_serves_health_and_a_proxied_call(
    stages: list[Stage], runtime_python: Path
) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to run the image command in its own netns")
    runtime = stages[-1]
    command = runtime.last("CMD").exec_form()
    spec = {
        "command": command,
        "healthcheck": runtime.last("HEALTHCHECK").exec_form(),
        "env": _stage_env(runtime),
        "port": int(command[command.index("--port") + 1]),
        "key": TEST_KEY,
    }
    assert spec["env"]["PYTHONDONTWRITEBYTECODE"] == "1"
    driver = Path(__file__).parent.parent / "support" / "image_driver.py"
    result = subprocess.run(
        ["unshare", "--net", str(runtime_python), str(driver), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthcheck_status"] == 0
    assert report["proxied_status"] == 200
    assert report["proxied_body"]["images"], report["proxied_body"]
    assert report["exit_status"] == 0
    assert TEST_KEY_SECRET not in report["stderr"]
    assert "Traceback" not in report["stderr"]
