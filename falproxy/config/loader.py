"""Build a ``ProxyConfig`` from the environment and a TOML file, naming what the user wrote.

Precedence is flags over environment over file: ``falproxy serve`` writes its flags into
the environment, the file's values are the base, and the environment is laid over them.
Every value remembers where it came from (``FALPROXY_BODY_TIMEOUT``, or
``falproxy.toml: body_timeout``), so any error, whether from parsing or from a settings
group's own validation, names that variable or key and never a secret's value.

Unknown ``FALPROXY_*`` variables and unknown file keys stop start-up with a "did you mean":
a misspelt security setting (``FALPROXY_RATELIMIT``) must not silently leave the proxy
open with its defaults.
"""

from __future__ import annotations

import logging
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from falproxy.config.table import Setting
from falproxy.core.errors import ConfigError, InvalidSetting
from falproxy.core.keys import FalCredential, credential_from_env, key_shape_problem
from falproxy.core.redact import mask_url

logger = logging.getLogger("falproxy.config")

# `falproxy serve --config FILE` passes the path to every worker through this variable.
CONFIG_FILE_ENV = "FALPROXY_CONFIG"
# Set by `falproxy serve` for its workers, not by users, or read only when the package is
# built (FALPROXY_COMPILE, setup.py); accepted, never reported unknown.
INTERNAL_VARIABLES = frozenset(
    {CONFIG_FILE_ENV, "FALPROXY_FAKE_BASE", "FALPROXY_FAKE_SPEED", "FALPROXY_COMPILE"}
)
PREFIX = "FALPROXY_"
# The key may be written as `credential` (the field) or `fal_key` (its variable's name).
FILE_KEY_ALIASES = {"fal_key": "credential"}
KEY_VARIABLES = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")

# Exit status of an embedding app whose configuration is wrong: gunicorn's arbiter stops on
# it ("App failed to load") instead of restarting the worker forever; uvicorn, flask run and
# Django pass it on. (`falproxy serve` itself exits 2, its usage-error status.)
APP_LOAD_ERROR = 4

Config = TypeVar("Config")
_logged: set[str] = set()


class FileSettings(dict[str, object]):
    """A file's settings as ``{field name: value}``, with the key each was written as."""

    def __init__(self, values: Mapping[str, object], labels: Mapping[str, str]) -> None:
        super().__init__(values)
        self.labels = dict(labels)


def load(
    env: Mapping[str, str],
    *,
    base: Mapping[str, object] | None,
    settings: tuple[Setting, ...],
    build: Callable[..., Config],
) -> tuple[Config, list[str]]:
    """The config ``build(**values)`` makes of ``base`` overlaid by ``env``, and warnings."""
    check_variables(env, settings)
    values: dict[str, object] = {"credential": None, **(base or {})}
    labels = dict(getattr(base, "labels", {}))
    warnings: list[str] = []
    credential = credential_from_env(env)
    if credential is not None:
        values["credential"] = credential
        labels["credential"] = _key_label(env)
    for row in settings:
        if row.env is None or row.parse is None:
            continue
        raw = env.get(row.env)
        if raw is not None and raw.strip():
            values[row.name] = parse_text(row, raw, row.env)
            labels[row.name] = row.env
    warnings.extend(_fold_log_formats(values, labels))
    problem = key_shape_problem(values["credential"])
    if problem is not None:
        warnings.append(f"{labels.get('credential', 'credential')} {problem}")
    try:
        return build(**values), warnings
    except InvalidSetting as exc:
        raise ConfigError(exc.label(labels)) from None


def load_sources(
    env: Mapping[str, str], *, settings: tuple[Setting, ...], build: Callable[..., Config]
) -> tuple[Config, list[str]]:
    """:func:`load` with the file named by ``FALPROXY_CONFIG`` in ``env`` (if any) as base."""
    path = env.get(CONFIG_FILE_ENV, "").strip()
    base = load_file(path, settings) if path else None
    return load(env, base=base, settings=settings, build=build)


def parse_text(row: Setting, raw: str, label: str) -> object:
    """``raw`` read as ``row``'s text form; ConfigError names ``label``, quotes only safe text."""
    assert row.parse is not None
    try:
        return row.parse(raw)
    except ValueError as exc:
        shown = f", got {mask_url(raw.strip())!r}" if row.value_kind.echo and not row.secret else ""
        raise ConfigError(f"{label} {exc}{shown}") from None


def check_variables(env: Mapping[str, str], settings: Iterable[Setting]) -> None:
    """Refuse a ``FALPROXY_*`` variable that no setting reads, suggesting the closest one."""
    known = {row.env for row in settings if row.env} | INTERNAL_VARIABLES
    for variable in sorted(env):
        if variable.startswith(PREFIX) and variable not in known:
            raise ConfigError(f"unknown variable {variable}{_suggestion(variable, known)}")


def _suggestion(word: str, known: Iterable[str]) -> str:
    import difflib  # only on the error path

    # Compared without the shared prefix, which would make every name look close.
    public = {name.removeprefix(PREFIX): name for name in known if name not in INTERNAL_VARIABLES}
    close = difflib.get_close_matches(word.removeprefix(PREFIX), sorted(public), n=1, cutoff=0.6)
    if close:
        return f": did you mean {public[close[0]]}?"
    return " (see `falproxy check` and the configuration reference for the known settings)"


def _key_label(env: Mapping[str, str]) -> str:
    return "FAL_KEY" if env.get("FAL_KEY") is not None else "FAL_KEY_ID/FAL_KEY_SECRET"


def _fold_log_formats(values: dict[str, object], labels: dict[str, str]) -> list[str]:
    """FALPROXY_ACCESS_LOG_FORMAT is the old name of FALPROXY_LOG_FORMAT: one value, both fields."""
    if "access_log_format" not in values and "log_format" not in values:
        return []
    if "log_format" not in values:
        values["log_format"] = values["access_log_format"]
        labels["log_format"] = labels.get("access_log_format", "access_log_format")
    elif "access_log_format" not in values:
        values["access_log_format"] = values["log_format"]
        labels["access_log_format"] = labels.get("log_format", "log_format")
    old = labels.get("access_log_format", "")
    if old == "FALPROXY_ACCESS_LOG_FORMAT":
        return [f"{old} is deprecated: use FALPROXY_LOG_FORMAT (the format of every log line)"]
    if old.endswith(": access_log_format"):
        return [f"{old} is deprecated: use log_format (the format of every log line)"]
    return []


def load_file(path: str | Path, settings: tuple[Setting, ...]) -> FileSettings:
    """The settings of a TOML file, validated key by key; errors name the file and key."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {str(path)!r} is not valid TOML: {exc}") from None
    return from_mapping(document, source=str(path), settings=settings)


def from_mapping(
    document: Mapping[str, Any], *, source: str, settings: tuple[Setting, ...]
) -> FileSettings:
    """Check every key against the table and read it as its setting's type."""
    rows = {row.file_key: row for row in settings if row.file_key}
    values: dict[str, object] = {}
    labels: dict[str, str] = {}
    for key, value in document.items():
        row = rows.get(FILE_KEY_ALIASES.get(key, key))
        if row is None:
            import difflib  # only on the error path

            known = [*rows, *FILE_KEY_ALIASES]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = (
                f": did you mean {close[0]}?" if close else f" (known: {', '.join(sorted(rows))})"
            )
            raise ConfigError(f"{source}: unknown setting {key!r}{hint}")
        label = f"{source}: {key}"
        values[row.name] = _file_value(row, value, label)
        labels[row.name] = label
    return FileSettings(values, labels)


def _file_value(row: Setting, value: object, label: str) -> object:
    kind = row.value_kind
    if row.name == "credential":
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string")
        return FalCredential(value, source=label)
    if isinstance(value, str) and row.parse is not None:
        return parse_text(row, value, label)
    try:
        return kind.from_file(value)
    except ValueError as exc:
        raise ConfigError(f"{label} {exc}") from None


def log_once(warnings: Iterable[str]) -> None:
    """Log each configuration warning once per process, however often config is loaded."""
    for warning in warnings:
        if warning not in _logged:
            _logged.add(warning)
            logger.warning(warning)


def exit_with(error: ConfigError) -> NoReturn:
    """The one line ``falproxy serve`` prints for a bad setting, then exit (see below)."""
    print(f"falproxy: error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(APP_LOAD_ERROR)
