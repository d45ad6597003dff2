"""A TOML configuration file as the base layer of :class:`ProxyConfig`.

Precedence is flags over environment over file: the file's values are the base mapping,
:meth:`ProxyConfig.from_env` lays the environment over them, and ``falproxy serve`` writes
its flags into the environment. The file's keys are the field names of ``ProxyConfig``,
derived from the dataclass itself, so a field added to ``ProxyConfig`` is settable from the
file with no change here. Unknown keys are an error: a typo must not silently fall back to
a default, least of all for a security setting.

Values are checked against each field's type. A string given for a field that has an
environment variable is parsed exactly as that variable is (``"fal-ai/flux/**,fal-ai/x"``
for a list, ``"fal.run=http://..."`` for the upstream mapping), so one syntax works in both.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from falproxy.config import settings as config_module
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import ConfigError

# `falproxy serve --config FILE` passes the path to every worker through this variable.
CONFIG_FILE_ENV = "FALPROXY_CONFIG"
# The key may be written as `credential` (the field) or `fal_key` (its variable's name).
KEY_ALIASES = {"fal_key": "credential"}


def load_config_file(path: str | Path) -> dict[str, object]:
    """The settings of a TOML file as ``{field name: typed value}``, validated key by key."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {str(path)!r} is not valid TOML: {exc}") from None
    return settings_from_mapping(document, source=str(path))


def settings_from_mapping(document: Mapping[str, Any], *, source: str) -> dict[str, object]:
    """Check every key against ``ProxyConfig``'s fields and coerce it to the field's type."""
    hints = typing.get_type_hints(ProxyConfig)
    fields = {field.name for field in dataclasses.fields(ProxyConfig)}
    settings: dict[str, object] = {}
    for key, value in document.items():
        name = KEY_ALIASES.get(key, key)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown setting {key!r} (known: {known})")
        settings[name] = _coerce(name, hints[name], value, source)
    return settings


def config_from_sources(env: Mapping[str, str]) -> ProxyConfig:
    """The effective configuration: the file named by ``FALPROXY_CONFIG``, then ``env``."""
    path = env.get(CONFIG_FILE_ENV, "").strip()
    base = load_config_file(path) if path else None
    return ProxyConfig.from_env(env, base=base)


def _coerce(name: str, hint: Any, value: object, source: str) -> object:
    parser = _env_parser(name)
    if isinstance(value, str) and parser is not None:
        variable = f"{source}: {name}"
        return parser(variable, value)
    try:
        return _to_type(hint, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {name} {exc}") from None


def _env_parser(name: str) -> Any:
    """The environment variable parser of a field, when the field has a variable."""
    entry = getattr(config_module, "_ENV_SETTINGS", {}).get(name)
    return entry[1] if entry else None


def _to_type(hint: Any, value: object) -> object:
    """``value`` as ``hint``; ``TypeError`` naming the expected type when it does not fit."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _to_union(args, value)
    if origin is typing.Literal:
        if value not in args:
            raise TypeError(f"must be one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, frozenset, list, set):
        if not isinstance(value, list):
            raise TypeError("must be a list")
        item = args[0] if args else Any
        items = [_to_type(item, element) for element in value]
        return tuple(items) if origin is tuple else origin(items)
    if origin in (dict, Mapping, typing.Mapping) or hint in (dict, Mapping):
        if not isinstance(value, dict):
            raise TypeError("must be a table")
        key_type, value_type = args if args else (Any, Any)
        return {_to_type(key_type, k): _to_type(value_type, v) for k, v in value.items()}
    return _to_scalar(hint, value)


def _to_union(args: tuple[Any, ...], value: object) -> object:
    errors = []
    for option in args:
        if option is type(None):
            continue
        try:
            return _to_type(option, value)
        except (TypeError, ValueError) as exc:
            errors.append(str(exc))
    raise TypeError(" or ".join(errors) or "cannot be set from a file")


def _to_scalar(hint: Any, value: object) -> object:
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError("must be a string")
        return value
    if isinstance(hint, type) and isinstance(value, str):
        # Value types such as FalCredential are built from their string form.
        return hint(value)
    raise TypeError("cannot be set from a file")
