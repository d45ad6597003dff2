"""The environment variables falproxy reads, from its settings table: the one place that
knows where the table lives, so a restructuring of the settings is adapted to here only."""

from __future__ import annotations

from falproxy.config import SETTINGS
from falproxy.config.loader import CONFIG_FILE_ENV

# FAL_KEY's row also accepts the pair FAL_KEY_ID + FAL_KEY_SECRET (falproxy/core/keys.py).
CREDENTIAL_PAIR = frozenset({"FAL_KEY_ID", "FAL_KEY_SECRET"})


def falproxy_variables() -> frozenset[str]:
    """Every current variable falproxy reads: settings, the config file path, the key.

    Deprecated spellings are left out: a shipped file must not use them.
    """
    names = frozenset(row.env for row in SETTINGS if row.env)
    assert "FAL_KEY" in names and len(names) > 20, "the settings table moved"
    return names | CREDENTIAL_PAIR | {CONFIG_FILE_ENV}
