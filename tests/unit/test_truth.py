"""Yes/no words: one reading for configuration files, Ganeti's environment, bindings."""

import pytest

from ganeti_ext.truth import is_yes, truth


@pytest.mark.parametrize("word", ["1", "yes", "True", " on ", "YES"])
def test_yes(word):
    assert truth(word) is True and is_yes(word)


@pytest.mark.parametrize("word", ["0", "no", "False", "off "])
def test_no(word):
    assert truth(word) is False and not is_yes(word)


@pytest.mark.parametrize("word", ["maybe", "2", "y"])
def test_not_a_word(word):
    assert truth(word) is None and not is_yes(word)


def test_empty_is_what_the_caller_says():
    assert truth("") is None  # a configuration file: a mistake
    assert truth("  ", empty=False) is False  # Ganeti's environment: an unset flag
    assert not is_yes(None) and not is_yes("")
