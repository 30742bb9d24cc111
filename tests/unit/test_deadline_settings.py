"""STORE_TIMEOUT and REDIS_TIMEOUT: seconds, more than 0, refused by name otherwise."""

from __future__ import annotations

import pytest

from api.settings.config import Settings, SettingsError


def test_deadlines_default_to_five_and_one_seconds() -> None:
    settings = Settings.from_env({})
    assert (settings.store_timeout, settings.redis_timeout) == (5.0, 1.0)


def test_deadlines_are_read_in_seconds() -> None:
    settings = Settings.from_env({"STORE_TIMEOUT": "2.5", "REDIS_TIMEOUT": "0.25"})
    assert (settings.store_timeout, settings.redis_timeout) == (2.5, 0.25)


@pytest.mark.parametrize("name", ["STORE_TIMEOUT", "REDIS_TIMEOUT"])
@pytest.mark.parametrize("bad", ["0", "-1", "soon", "inf", "nan"])
def test_a_deadline_that_is_not_a_positive_number_is_refused_by_name(name: str, bad: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: bad})


def test_a_grace_may_be_zero_where_a_deadline_may_not() -> None:
    # One seconds parser serves both: the grace takes 0 (no wait), a deadline refuses it.
    assert Settings.from_env({"SHUTDOWN_GRACE": "0"}).shutdown_grace == 0.0
    with pytest.raises(
        SettingsError, match="STORE_TIMEOUT must be a number of seconds, more than 0"
    ):
        Settings.from_env({"STORE_TIMEOUT": "0"})
    with pytest.raises(
        SettingsError, match="SHUTDOWN_GRACE must be a number of seconds, 0 or more"
    ):
        Settings.from_env({"SHUTDOWN_GRACE": "-0.5"})
