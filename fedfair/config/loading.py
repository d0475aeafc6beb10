"""Reading and writing configs: TOML files, dotted ``section.key=value`` overrides, typed coercion.

The schema is the dataclasses of :mod:`fedfair.config.sections`; this module only turns text
into them (and back), so a value is checked against its field's type hint in one place.
"""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .checks import ConfigError, _check_choice
from .sections import MOVED, NOT_FOR_FILES, Config

SECTIONS: dict[str, type] = {f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)}


@dataclass(frozen=True)
class _Override:
    """A command-line value, typed only once the field it sets is known (so run.name=inf stays a string)."""
    text: str


_SCALARS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"), int: ((int,), "an integer"), float: ((int, float), "a number"),
    str: ((str,), "a string")}
"""A scalar field's accepted TOML types (ints where floats are) and the words of its error."""


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check a TOML value against a field's type hint; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    if isinstance(value, _Override):
        if hint is str:
            value = value.text
        elif origin is Literal:  # a choice: a quoted or bare word, anything else stays its text
            parsed = _parse_value(value.text)
            value = parsed if isinstance(parsed, str) else value.text
        else:
            value = _parse_value(value.text)
    if origin is Literal:
        _check_choice(name, value, hint)
        return value
    if origin is dict:  # a TOML inline table, e.g. train.model_args = {hidden = [64, 32]}
        if not isinstance(value, dict):
            raise ConfigError(f"{name} = {value!r} is invalid: expected a table, e.g. {{hidden = [64, 32]}}")
        return dict(value)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{name} = {value!r} is invalid: expected a list")
        if typing.get_origin(item) is Literal:  # _check_choices judges the whole list, in one line
            return list(value)
        return [_coerce(name, v, item) for v in value]
    if hint in _SCALARS:
        kinds, expected = _SCALARS[hint]
        if not isinstance(value, kinds) or (isinstance(value, bool) and hint is not bool):
            raise ConfigError(f"{name} = {value!r} is invalid: expected {expected}")
        return float(value) if hint is float else value
    raise ConfigError(f"{name}: unsupported type {hint}")  # pragma: no cover - schema bug


def _build(cls: type, values: Any, where: str) -> Any:
    """One section (or a section's settings table, e.g. [mechanism.gtg]) from its dict of keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"[{where}] must be a table of keys")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if f"{where}.{key}" in MOVED:
            new = MOVED[f"{where}.{key}"]
            table, leaf = new.rsplit(".", 1)
            raise ConfigError(f"config key {where}.{key} has moved to {new} (in a config file: [{table}] {leaf} = ...)")
        if key not in hints:
            raise ConfigError(f"unknown config key {where}.{key}: [{where}] has {', '.join(hints)}")
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], value, f"{where}.{key}")
        else:
            kwargs[key] = _coerce(f"{where}.{key}", value, hints[key])
    return cls(**kwargs)


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a validated Config from nested dicts; unknown sections or keys are errors."""
    sections: dict[str, Any] = {}
    for sec, values in raw.items():
        if sec not in SECTIONS:
            raise ConfigError(f"unknown config section [{sec}]: expected one of {', '.join(SECTIONS)}")
        sections[sec] = _build(SECTIONS[sec], values, sec)
    return Config(**sections)


def _parse_value(text: str) -> Any:
    """A command-line value is read as a TOML value (numbers, true/false, inf, lists), else as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` (or ``section.table.key=value``) overrides to a nested dict (a copy)."""
    out = _copy_tables(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is invalid: expected section.key=value")
        key, text = item.split("=", 1)
        parts = key.split(".")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"override key {key!r} is invalid: expected section.key (e.g. mechanism.beta) "
                              "or section.table.key (e.g. mechanism.gtg.max_evals)")
        table = out
        for depth, name in enumerate(parts[:-1]):
            table.setdefault(name, {})
            if not isinstance(table[name], dict):
                raise ConfigError(f"override {key!r}: [{'.'.join(parts[:depth + 1])}] is not a table")
            table = table[name]
        table[parts[-1]] = _Override(text)
    return out


def _copy_tables(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy_tables(v) if isinstance(v, dict) else v for k, v in raw.items()}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a TOML file (or the defaults when path is None), apply overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} not found")
        try:
            raw = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    return from_dict(apply_overrides(raw, overrides or []))


def upgrade_recorded(raw: dict[str, Any]) -> dict[str, Any]:
    """A config recorded before keys moved (MOVED), with each old key at its new place (a copy)."""
    out = _copy_tables(raw)
    for old, new in MOVED.items():
        *old_tables, old_key = old.split(".")
        holder = out
        for t in old_tables:
            holder = holder.get(t) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or old_key not in holder:
            continue
        value = holder.pop(old_key)
        *new_tables, new_key = new.split(".")
        target = out
        for t in new_tables:
            target = target.setdefault(t, {})
        target.setdefault(new_key, value)
    return out


def load_recorded(path: str | Path) -> Config:
    """A run folder's config.toml, also one recorded before keys moved (read with them at their new place):
    the experiment tools read old run folders; a config a user gives still names its keys as they are."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    return from_dict(upgrade_recorded(raw))


def _toml_key(key: str) -> str:
    """A bare TOML key when it can be one, else a quoted one."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if math.isnan(v):
            return "nan"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table: one line, keys quoted unless bare
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML (round-trips through load_config); a section's settings tables
    (e.g. [mechanism.gtg]) follow the section's own keys. A files run leaves out the [data] keys that do
    not apply to it (NOT_FOR_FILES; they load as their defaults)."""
    lines = []
    d = cfg.to_dict()
    if cfg.data.dataset == "files":
        lines.append(f"# dataset = \"files\": {', '.join(NOT_FOR_FILES)} do not apply (the data is what the parties "
                     "hold) and are left out")
        d["data"] = {k: v for k, v in d["data"].items() if k not in NOT_FOR_FILES}
    for sec, values in d.items():
        hints = typing.get_type_hints(SECTIONS[sec])
        tables = [k for k in values if dataclasses.is_dataclass(hints[k])]
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if k not in tables]
        lines.append("")
        for k in tables:
            lines.append(f"[{sec}.{k}]")
            lines += [f"{kk} = {_toml_value(v)}" for kk, v in values[k].items()]
            lines.append("")
    return "\n".join(lines)
