"""Optional dependencies: a missing one is one line that names the ``pip install`` to run.

falproxy's base install carries only what every proxy needs; Redis rate limits,
asymmetric JWKS keys and each web framework come with an extra. Asking for a feature
whose extra is absent must say which extra, not end in an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib.util


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` (quoted: shells glob the brackets)."""
    return f"pip install 'falproxy[{extra}]'"


def missing_extra_message(what: str, package: str, extra: str) -> str:
    return f"{what} needs the {package} package: {install_hint(extra)}"


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def framework_import_error(integration: str, package: str, extra: str) -> ModuleNotFoundError:
    """The error ``falproxy.integrations.<x>`` raises when its framework is absent."""
    return ModuleNotFoundError(
        missing_extra_message(f"falproxy.integrations.{integration}", package, extra),
        name=package.lower(),
    )
