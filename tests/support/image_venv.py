"""falproxy installed exactly as the Dockerfile installs it, in a fresh virtual environment.

The build stage's COPY and RUN lines run as written on a copy of the tree (producing the
wheel); the runtime stage's pip RUN line, read from the Dockerfile, installs that wheel
into a new virtual environment holding nothing else. Deployment tests run ``falproxy``
from there, so a dependency the image lacks fails them as it would fail the image.

Building a wheel and a venv takes a while, so the result is cached by a hash of
everything the build reads (the Dockerfile and the files it copies), under a lock so
parallel sessions on one machine build it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path

from tests.support.dockerfile import Stage, parse
from tests.support.procs import REPO

DOCKERFILE = REPO / "Dockerfile"
# RUN lines of the runtime stage that are not replayed, and why: they need the image's own
# /etc (useradd) and root; test_dockerfile.py checks their effect instead.
NOT_REPLAYED = ("groupadd --system --gid 10001 falproxy",)
BUILD_OUTPUT = "/wheels"
CACHE_ROOT = Path(tempfile.gettempdir()) / f"falproxy-image-venvs-{os.getuid()}"
COMPLETE_MARKER = "complete"
RUN_TIMEOUT = 540
STALE_AFTER = 24 * 3600  # seconds since a cached environment was built


@dataclass(frozen=True)
class ImageVenv:
    """The virtual environment the image's runtime stage would hold (or ``plain``: the
    wheel alone, ``pip install <wheel>`` with no extras, as a user's first install)."""

    root: Path
    name: str = "venv"

    @property
    def bin(self) -> Path:
        return self.root / self.name / "bin"

    @property
    def wheel(self) -> Path:
        (found,) = (self.root / "build-output").glob("falproxy-*.whl")
        return found

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def falproxy(self) -> Path:
        return self.bin / "falproxy"

    def site_packages(self) -> Path:
        found = sorted((self.root / self.name).glob("lib/python*/site-packages"))
        assert len(found) == 1, found
        return found[0]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` without anything that would let the development tree leak in."""
        clean = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        clean["PATH"] = f"{self.bin}:{clean.get('PATH', os.defpath)}"
        return clean


def _copied_sources(stage: Stage) -> list[Path]:
    files: list[Path] = []
    for copy in stage.all("COPY"):
        for source in copy.arguments.split()[:-1]:
            origin = REPO / source
            if origin.is_dir():
                files.extend(
                    p
                    for p in sorted(origin.rglob("*"))
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
                )
            else:
                files.append(origin)
    return files


def source_hash(stages: list[Stage]) -> str:
    """A hash of the Dockerfile and every file its build stage copies."""
    digest = hashlib.sha256(DOCKERFILE.read_bytes())
    for path in _copied_sources(stages[0]):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _copy_build_context(stage: Stage, workdir: Path) -> None:
    for copy in stage.all("COPY"):
        *sources, destination = copy.arguments.split()
        target = workdir / destination
        for source in sources:
            origin = REPO / source
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(origin, target, ignore=ignore)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target / origin.name)


def run_line(command: str, cwd: Path, bin_dir: Path, replacements: dict[str, str]) -> None:
    """One RUN line under ``sh -e``, with ``bin_dir`` first on PATH (the stage's python)."""
    for old, new in replacements.items():
        command = command.replace(old, new)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    result = subprocess.run(
        ["sh", "-ec", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


def runtime_install_lines(runtime: Stage) -> list[str]:
    """The runtime stage's RUN lines that install falproxy (all but NOT_REPLAYED)."""
    lines = [r.arguments for r in runtime.all("RUN") if not r.arguments.startswith(NOT_REPLAYED)]
    for line in lines:
        assert "pip install" in line, f"a RUN line this helper does not know: {line}"
    return lines


def _build(stages: list[Stage], root: Path) -> None:
    build, runtime = stages
    workdir = root / build.last("WORKDIR").arguments.lstrip("/")
    workdir.mkdir(parents=True)
    _copy_build_context(build, workdir)
    wheels = root / "build-output"
    builder_bin = Path(sys.executable).parent
    for run in build.all("RUN"):
        run_line(run.arguments, workdir, builder_bin, {BUILD_OUTPUT: str(wheels)})
    assert len(list(wheels.glob("falproxy-*.whl"))) == 1
    environment = root / "venv"
    venv.create(environment, with_pip=True)
    copied = root / "copied-wheels"
    shutil.copytree(wheels, copied)
    lines = runtime_install_lines(runtime)
    assert len(lines) == 1, lines
    run_line(lines[0], root, environment / "bin", {BUILD_OUTPUT: str(copied)})
    assert not copied.exists(), "the install line also removes the wheels"
    shutil.rmtree(workdir)


def _prune(cache_root: Path, keep: Path) -> None:
    """Drop environments of old sources (other trees' recent ones are left alone)."""
    for entry in cache_root.iterdir():
        if entry.is_dir() and entry != keep and time.time() - entry.stat().st_mtime > STALE_AFTER:
            shutil.rmtree(entry, ignore_errors=True)


def image_venv(cache_root: Path = CACHE_ROOT) -> ImageVenv:
    """The image's runtime environment for the current sources, built once and cached."""
    stages = parse(DOCKERFILE)
    assert len(stages) == 2, "a build stage and a runtime stage"
    cache_root.mkdir(parents=True, exist_ok=True)
    root = cache_root / source_hash(stages)
    with open(cache_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / COMPLETE_MARKER).exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            _build(stages, root)
            (root / COMPLETE_MARKER).write_text("ok\n")
        _prune(cache_root, root)
    return ImageVenv(root)


def plain_venv(image: ImageVenv) -> ImageVenv:
    """The image's wheel installed alone (``pip install <wheel>``), in a fresh venv."""
    plain = ImageVenv(image.root, "plain")
    with open(image.root / ".plain-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (image.root / "plain-complete").exists():
            shutil.rmtree(image.root / plain.name, ignore_errors=True)
            venv.create(image.root / plain.name, with_pip=True)
            command = f"pip install --no-cache-dir {image.wheel}"
            run_line(command, image.root, plain.bin, {})
            (image.root / "plain-complete").write_text("ok\n")
    return plain
