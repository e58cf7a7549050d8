"""Config fuzzing: every key, given a wrong type, an out-of-range value or an unknown name,
is one ``ConfigError`` line naming the key and what it allows; every value accepted makes a
config the trainer can plan. Property-based (hypothesis, derandomized: the same examples
every run)."""
import math
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freqalign.run.config import (ALLOWED, RENAMED, Choices, Config, ConfigError, Pattern,
                                    Range, make_config, parse_overrides)
from freqalign.train.plan import Plan

KEYS = [f.name for f in fields(Config)]
DEFAULTS = Config()
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def refused(key, value) -> str:
    """The one-line message of the ConfigError that ``key=value`` raises over the smoke preset."""
    with pytest.raises(ConfigError) as err:
        make_config("smoke", overrides={key: value})
    message = str(err.value)
    assert "\n" not in message and key in message, message
    return message


def accepted_or_refused(key, value) -> None:
    """``key=value`` makes a config that plans, or is refused with one line naming the key."""
    try:
        cfg = make_config("smoke", overrides={key: value})
    except ConfigError as err:
        assert "\n" not in str(err) and key in str(err), str(err)
        return
    assert Plan(cfg).total > 0


def test_every_key_says_what_it_allows():
    assert list(ALLOWED) and set(ALLOWED) == set(KEYS)
    for key in KEYS:  # each default is allowed
        assert ALLOWED[key].allows(getattr(DEFAULTS, key)), key


def wrong_type(default):
    junk = st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=1)
    if isinstance(default, bool):
        return st.integers() | st.floats() | st.text(max_size=5) | junk
    if isinstance(default, int):
        return st.booleans() | st.floats().filter(lambda v: not float(v).is_integer()) | \
            st.floats(allow_infinity=False, allow_nan=False).filter(float.is_integer) | \
            st.text(max_size=5) | junk
    if isinstance(default, float):
        return st.booleans() | st.text(max_size=5) | junk
    return st.booleans() | junk  # strings: numbers are taken as their text


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("key", KEYS)
def test_a_wrong_type_is_one_line_naming_the_key(key, data):
    message = refused(key, data.draw(wrong_type(getattr(DEFAULTS, key))))
    assert "expected" in message or "must be" in message, message


def out_of_range(allowed, default):
    if isinstance(allowed, Choices):
        return st.text(max_size=12).filter(lambda v: v not in allowed.values) if \
            isinstance(default, str) else st.nothing()
    if isinstance(allowed, Pattern):
        return st.text(max_size=12).filter(lambda v: not allowed.allows(v))
    number = st.integers if isinstance(default, int) else st.floats
    low = number(max_value=allowed.low, exclude_max=True) if isinstance(default, float) \
        else number(max_value=allowed.low - 1)
    bad = low | (st.just(allowed.low) if allowed.open_low else st.nothing())
    if allowed.high is not None:
        bad |= number(min_value=allowed.high + (0 if isinstance(default, float) else 1),
                      **({"exclude_min": not allowed.open_high} if isinstance(default, float) else {}))
        bad |= st.just(allowed.high) if allowed.open_high else st.nothing()
    if isinstance(default, float):
        bad |= st.sampled_from([math.nan, math.inf, -math.inf])
    return bad


RANGED = [k for k in KEYS if not (isinstance(ALLOWED[k], Pattern) and ALLOWED[k].text == "any text")
          and not isinstance(getattr(DEFAULTS, k), bool)]


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("key", RANGED)
def test_an_out_of_range_value_is_one_line_naming_the_key_and_what_it_allows(key, data):
    value = data.draw(out_of_range(ALLOWED[key], getattr(DEFAULTS, key)))
    message = refused(key, value)
    assert f"must be {'finite and ' if isinstance(value, float) and not math.isfinite(value) else ''}" \
           f"{ALLOWED[key]}" in message, message


def in_range(allowed, default):
    if isinstance(allowed, (Choices, Pattern)):
        return st.sampled_from(allowed.values) if isinstance(allowed, Choices) else st.text(max_size=12)
    if isinstance(default, int):
        return st.integers(min_value=allowed.low, max_value=allowed.high)
    return st.floats(min_value=allowed.low, max_value=allowed.high, exclude_min=allowed.open_low,
                     exclude_max=allowed.open_high)


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("key", KEYS)
def test_a_value_in_range_plans_or_is_refused_by_a_rule_between_keys(key, data):
    """Allowed alone, a value may still break a rule between keys (window_size > grid ** 2):
    then the line names the key too."""
    accepted_or_refused(key, data.draw(in_range(ALLOWED[key], getattr(DEFAULTS, key))))


@FUZZ
@given(text=st.text(max_size=20))
@pytest.mark.parametrize("key", KEYS)
def test_any_command_line_text_plans_or_is_one_line(key, text):
    """``key=TEXT`` as typed on the command line (parsed as YAML)."""
    accepted_or_refused(key, parse_overrides([f"{key}={text}"])[key])


@FUZZ
@given(key=st.text(min_size=1, max_size=15).filter(lambda k: k not in KEYS and k not in RENAMED))
def test_an_unknown_key_is_one_line_naming_it_and_the_keys_allowed(key):
    with pytest.raises(ConfigError) as err:
        make_config("smoke", overrides={key: 1})
    message = str(err.value)
    assert "\n" not in message and f"unknown config key {key!r}" in message
    assert "did you mean" in message or "known keys: method, preset" in message
