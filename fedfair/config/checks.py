"""The checks every config section uses: one line naming the field, the value and what is allowed."""
from __future__ import annotations

import typing
from typing import Any, Literal


class ConfigError(ValueError):
    """An invalid configuration: the message names the field, the value and what is allowed."""


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name} = {value!r} is invalid: {allowed}")


def _check_choice(name: str, value: Any, hint: Any) -> None:
    """A Literal[...] field: the value must be one of the Literal's strings."""
    allowed = typing.get_args(hint)
    _check(isinstance(value, str) and value in allowed, name, value, f"one of {', '.join(map(str, allowed))}")


def _check_entries(name: str, values: Any, item: Any) -> None:
    """A list[Literal[...]] field: every entry is one of the Literal's strings."""
    allowed = typing.get_args(item)
    _check(all(isinstance(v, str) and v in allowed for v in values), name, values,
           f"entries must be one of {', '.join(map(str, allowed))}")


def _check_choices(obj: Any, section: str) -> None:
    """Every ``Literal[...]`` field (and every entry of a ``list[Literal[...]]`` field) holds one of
    its choices, also when the config is built in code, not from TOML."""
    for name, hint in typing.get_type_hints(type(obj)).items():
        if typing.get_origin(hint) is Literal:
            _check_choice(f"{section}.{name}", getattr(obj, name), hint)
        elif typing.get_origin(hint) is list and typing.get_origin(typing.get_args(hint)[0]) is Literal:
            _check_entries(f"{section}.{name}", getattr(obj, name), typing.get_args(hint)[0])
