"""Yes/no words, read the same way everywhere: configuration files, Ganeti's
environment, binding files and image properties."""

from __future__ import annotations

TRUE_WORDS = ("1", "yes", "true", "on")
FALSE_WORDS = ("0", "no", "false", "off")


def truth(text: str, *, empty: bool | None = None) -> bool | None:
    """True or False for a yes/no word (any case, surrounding space ignored), None for
    anything else. An empty text gives `empty`: Ganeti writes an unset flag as "" (False),
    while in a configuration file an empty value is a mistake (None)."""
    word = text.strip().lower()
    if not word:
        return empty
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def is_yes(text: str | None) -> bool:
    """Whether an optional setting says yes (anything else, absence included, is no)."""
    return text is not None and truth(text) is True
