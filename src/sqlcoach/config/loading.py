"""Loading typed configs: YAML file + ``key=value`` overrides -> a validated dataclass.

``load_config(cls, path, overrides)`` reads a YAML file into a dataclass: unknown keys are errors
that list the valid keys, ``key=value`` overrides are coerced to the field's type, and the
dataclass's ``__post_init__`` checks the rules (each message says which rule a value breaks).
``describe_fields(cls)`` lists every field with its type, default and help text (``--help-config``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from sqlcoach.errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"none", "null", "~", ""}


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a ``key=value`` string) to the annotated type ``tp``.

    Supports bool, int, float, str, ``X | None``, ``list[X]``/``tuple[X, ...]`` (from a YAML list or a
    comma-separated string, with or without the brackets of YAML's flow list: ``seeds=0,1,2`` and
    ``seeds=[0,1,2]`` are the same) and ``Literal[...]``. Raises ``ConfigError`` naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE and type(None) in args):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: cannot use {value!r}")
    if origin is typing.Literal:
        for arg in args:
            if value == arg or (isinstance(value, str) and str(arg) == value):
                return arg
        raise ConfigError(f"{key} must be one of {list(args)}, got {value!r}")
    if origin in (list, tuple):
        item_tp = args[0] if args else Any
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        items = [coerce(v, item_tp, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["lr=1e-3", "lora_r=8"]`` -> ``{"lr": "1e-3", "lora_r": "8"}``; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not key=value")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def build_config(cls: type[T], values: dict[str, Any], *, source: str = "config") -> T:
    """Build the dataclass ``cls`` from ``values``; unknown keys are an error listing the valid ones,
    and a key the class lists in ``renamed`` an error naming its new name."""
    ftypes = _field_types(cls)
    renamed = getattr(cls, "renamed", {})  # old key -> new key (e.g. config.rl.RENAMED)
    stale = sorted(k for k in values if k in renamed and k not in ftypes)
    if stale:
        raise ConfigError(
            f"{source}: " + "; ".join(f"{k!r} was renamed to {renamed[k]!r}" for k in stale) + " (one name per idea "
            "across the RL recipes): rename the key in the file or the override"
        )
    unknown = sorted(set(values) - set(ftypes))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown}; valid keys are: {', '.join(sorted(ftypes))}"
        )
    kwargs = {k: coerce(v, ftypes[k], k) for k, v in values.items()}
    return cls(**kwargs)


def load_config(cls: type[T], path: str | Path | None, overrides: dict[str, Any] | None = None) -> T:
    """Read YAML ``path`` (may be ``None``: defaults only), apply ``overrides``, validate."""
    import yaml

    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of key: value")
        values.update(loaded)
    values.update(overrides or {})
    return build_config(cls, values, source=source)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def describe_fields(cls: type) -> str:
    """Every field of the config dataclass ``cls``: name, type, default and help text, one per
    line, grouped as the class groups them (what ``sqlcoach train X --help-config`` prints)."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        tp = hints[f.name]
        tname = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
        rows.append((f.name, tname, repr(default), f.metadata.get("help", "")))
    w0 = max(len(r[0]) for r in rows)
    w2 = min(24, max(len(r[2]) for r in rows))
    lines = [f"{cls.__name__}: every key a YAML file or a key=value override may set", ""]
    for name, tname, default, help_ in rows:
        lines.append(f"  {name:<{w0}}  {default:<{w2}}  {help_}  [{tname}]")
    return "\n".join(lines)
