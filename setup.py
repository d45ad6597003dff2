"""falproxy's build: the metadata is in pyproject.toml; this file compiles the hot path.

The modules every proxied HTTP call runs through are compiled to C extensions with mypyc
(from their type annotations; no separate source), which serves about 1.2-1.45x the
requests per CPU-second of the same code interpreted (bench/compiled_ab_results.md). The
Python sources ship beside them and are the fallback.

``FALPROXY_COMPILE`` chooses, at build time:

* ``auto`` (default): compile; if no C compiler with the Python headers works, warn and
  build pure Python, so ``pip install .`` works everywhere. An editable install
  (``pip install -e .``) stays pure Python: scripts/compile builds in place when wanted;
* ``1``: compile or fail the build (the Dockerfile, CI);
* ``0``: pure Python.

``falproxy --version`` says which one is installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from setuptools import setup

# The per-call hot path; the rest (configuration, CLI, fake fal, WebSocket relay, hooks)
# runs once per process or per socket and stays interpreted. Left out too: modules with
# async generators (mypyc does not compile them), and core/policy.py, whose public
# constructor must refuse True and 1.5 as a token lifetime with its own ValueError
# (compiled, an ``int`` parameter takes True as 1 and refuses 1.5 with a TypeError).
COMPILED = [
    "falproxy/wire/boundaries.py",
    "falproxy/wire/fields.py",
    "falproxy/wire/framing.py",
    "falproxy/wire/parsers.py",
    "falproxy/wire/states.py",
    "falproxy/wire/writer.py",
    "falproxy/client/client.py",
    "falproxy/client/connection.py",
    "falproxy/client/pool.py",
    "falproxy/client/request.py",
    "falproxy/client/response.py",
    "falproxy/relay/body.py",
    "falproxy/relay/call.py",
    "falproxy/relay/exchange.py",
    "falproxy/relay/upstream.py",
    "falproxy/standalone/native/exchange.py",
    "falproxy/standalone/native/protocol.py",
    "falproxy/admission/pipeline.py",
    "falproxy/admission/gate.py",
    "falproxy/core/answers.py",
    "falproxy/core/body.py",
    "falproxy/core/headers.py",
    "falproxy/core/lifecycle.py",
    "falproxy/core/pipeline.py",
    "falproxy/core/targets.py",
    "falproxy/ops/calls.py",
    "falproxy/ops/metrics.py",
    "falproxy/proxy/routing.py",
]

MODE = os.environ.get("FALPROXY_COMPILE", "auto").strip().lower()
if MODE not in ("auto", "1", "0"):
    sys.exit(f"FALPROXY_COMPILE must be auto, 1 or 0, not {MODE!r}")


# Commands that build the package; the others (metadata, sdist) need no compiling.
BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def compiler_works() -> bool:
    """Whether a C file that includes ``Python.h`` compiles here (CC, the headers).

    Tried before anything is built: a half-built set of modules would fail at import,
    which is worse than none; and a pure build must be known before the wheel is named.
    """
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler, get_python_inc

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.c"
        probe.write_text("#include <Python.h>\nint falproxy_probe(void) { return 0; }\n")
        try:
            compiler.compile([str(probe)], output_dir=folder, include_dirs=[get_python_inc()])
        except Exception:  # CompileError, or the compiler program is missing
            return False
    return True


def extensions() -> list[Any]:
    if MODE == "0" or not BUILDING.intersection(sys.argv[1:]):
        return []
    if MODE == "auto" and "editable_wheel" in sys.argv:
        return []  # `pip install -e .` is for editing: compiled modules would shadow edits
    if MODE == "auto" and not compiler_works():
        print(
            "falproxy: no working C compiler and Python headers; installing pure Python, "
            "which serves fewer requests per CPU-second. Install gcc and the Python headers, "
            "or set FALPROXY_COMPILE=1 to make this an error.",
            file=sys.stderr,
        )
        return []
    from mypyc.build import mypycify  # a build requirement (pyproject.toml)

    return list(mypycify(COMPILED, opt_level="3", group_name="falproxy.compiled"))


setup(ext_modules=extensions())
