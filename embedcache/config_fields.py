"""Typed configurations read from TOML recipes and ``key=value`` overrides: one loader, one parser.

A configuration is a frozen dataclass (:class:`~embedcache.training.TrainingConfig`,
:class:`~embedcache.training.char_lm.CharLMConfig`,
:class:`~embedcache.embeddings.train_words.WordVectorConfig`); its fields, with their types and defaults, are
the only list of a trainer's settings. Recipes of every kind are read with :func:`read_toml`, overrides parsed
with :func:`parse_override`, and every table checked against its dataclass with :func:`check_settings`, so
that a misspelt key is named with its file, line and the nearest valid key:

    recipes/charlm.toml:21: [forward] unknown key 'hiden_size'; did you mean 'hidden_size'? (known: ...)

This module imports nothing of the package: every layer may use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
import types
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NO_DEFAULT = dataclasses.MISSING


class RecipeError(ValueError):
    """A recipe that cannot run (bad TOML, an unknown setting, a missing file); the message names it."""


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML of a recipe file, as a dict.

    Raises:
        RecipeError: no such file, not UTF-8, or invalid TOML (the message gives line and column).
    """
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RecipeError(f"{path}: no such recipe file") from error
    except IsADirectoryError as error:
        raise RecipeError(f"{path}: is a directory, not a recipe file") from error
    except UnicodeDecodeError as error:
        raise RecipeError(f"{path}: not UTF-8 (byte {error.start})") from error
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{path}: invalid TOML: {error}") from error


def parse_value(raw: str) -> Any:
    """A command-line value read as TOML (``3``, ``true``, ``2e-3``, ``"x"``, ``[...]``), else as text.

    ``none`` and ``null`` are ``None`` (unset); :func:`checked_value` reads ``None`` back as ``"none"`` for a
    setting that has ``"none"`` among its choices and cannot be unset (``training.storage_mode=none``).
    """
    if raw.strip().lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string such as a path


@dataclass(frozen=True)
class Override:
    """One ``key=value`` (``--set``) assignment; ``key`` may be dotted (``training.max_epochs``)."""

    key: str
    raw: str

    @property
    def value(self) -> Any:
        return parse_value(self.raw)

    def __str__(self) -> str:
        return f"--set {self.key}={self.raw}"


def parse_override(assignment: str) -> Override:
    """``"a.b=c"`` as an :class:`Override`; a missing ``=`` or key is a :class:`RecipeError`."""
    key, equals, raw = assignment.partition("=")
    if not equals or not key.strip():
        raise RecipeError(f"--set {assignment}: expected KEY=VALUE, e.g. training.max_epochs=5")
    return Override(key.strip(), raw)


def apply_override(recipe: dict[str, Any], override: Override) -> None:
    """Set ``override`` in ``recipe``; missing tables are created, list items are addressed by index."""
    *parents, last = override.key.split(".")
    node: Any = recipe
    for part in parents:
        if isinstance(node, list):
            node = node[_list_index(node, part, override)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise RecipeError(f"{override}: {part!r} is inside a value, not a table")
    if isinstance(node, list):
        node[_list_index(node, last, override)] = override.value
    elif isinstance(node, dict):
        node[last] = override.value
    else:
        raise RecipeError(f"{override}: {last!r} is inside a value, not a table")


def _list_index(items: list[Any], part: str, override: Override) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise RecipeError(f"{override}: {part!r} is not an index of a list of {len(items)} items")
    return int(part)


@dataclass(frozen=True)
class Table:
    """Where settings come from: a recipe file, its table (``None``: the top level) and the overrides."""

    source: Path
    section: str | None = None
    overrides: tuple[Override, ...] = ()

    def locate(self, key: str) -> str:
        """``file:line`` of ``key``'s assignment in this table, or the override that set it, or the file."""
        dotted = key if self.section is None else f"{self.section}.{key}"
        for override in reversed(self.overrides):
            if override.key in (dotted, key):
                return f"{self.source}: {override}"
        return (
            f"{self.source}:{line}"
            if (line := key_line(self.source, key, self.section))
            else str(self.source)
        )

    def prefix(self) -> str:
        """``"[section] "`` before a key in messages; nothing for the top level."""
        return "" if self.section is None else f"[{self.section}] "


def key_line(path: Path, key: str, section: str | None) -> int | None:
    """The line of the assignment to ``key`` in ``[section]`` (``None``: top level) of a TOML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    current, pattern = None, re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
        elif current == section and pattern.match(line):
            return number
    return None


def unknown_key(table: Table, key: str, known: Collection[str]) -> RecipeError:
    """The error for a key that no setting has: where it is, the nearest valid key, and all of them."""
    near = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return RecipeError(
        f"{table.locate(key)}: {table.prefix()}unknown key {key!r}{hint} (known: {', '.join(sorted(known))})"
    )


def check_known(table: Table, values: Mapping[str, Any], known: Collection[str]) -> None:
    """Raise :func:`unknown_key` for the first key of ``values`` that is not in ``known``."""
    for key in sorted(set(values) - set(known)):
        raise unknown_key(table, key, known)


def field_types(config: type) -> dict[str, Any]:
    """The type of each field of the dataclass ``config``, by name."""
    hints = get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def field_defaults(config: type) -> dict[str, Any]:
    """Each field's default (:data:`NO_DEFAULT` for a required one), by name."""
    return {
        f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(config)
    }


def check_settings(
    config: type, table: Table, values: Mapping[str, Any], exclude: Collection[str] = ()
) -> dict[str, Any]:
    """``values`` checked against the fields of ``config`` (less ``exclude``) and converted to their types.

    Raises:
        RecipeError: an unknown key (with the nearest valid one) or a value of the wrong type, located.
    """
    expected = {name: hint for name, hint in field_types(config).items() if name not in exclude}
    check_known(table, values, expected)
    return {key: checked_value(key, value, expected[key], table) for key, value in values.items()}


def checked_value(key: str, value: Any, expected: Any, table: Table) -> Any:
    """``value`` if it fits the type ``expected`` (ints pass for floats, lists for tuples), converted."""
    converted = _converted(value, expected)
    if converted is _MISFIT:
        raise RecipeError(
            f"{table.locate(key)}: {table.prefix()}{key} = {value!r} should be {describe(expected)}"
        )
    return converted


_MISFIT = object()


def _converted(value: Any, expected: Any) -> Any:
    origin, options = get_origin(expected), get_args(expected)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None) and (converted := _converted(value, option)) is not _MISFIT:
                return converted
        return _MISFIT
    if origin is Literal:
        if value is None and "none" in options:
            return "none"
        return value if value in options else _MISFIT
    if origin is tuple:
        item = options[0] if options else Any
        if not isinstance(value, (list, tuple)):
            return _MISFIT
        items = [_converted(v, item) for v in value]
        return _MISFIT if any(i is _MISFIT for i in items) else tuple(items)
    if expected is Any:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
        return _MISFIT
    return value


def takes_list(expected: Any) -> bool:
    """Whether a setting of type ``expected`` is a list (``tuple[str, ...]``, ``tuple[int, ...] | None``)."""
    options = get_args(expected) if get_origin(expected) in (Union, types.UnionType) else (expected,)
    return any(get_origin(option) is tuple for option in options)


def describe(expected: Any) -> str:
    """A type as a person reads it: ``an int``, ``one of 'sgd', 'adamw'``, ``a number, or none``."""
    origin, options = get_origin(expected), get_args(expected)
    if origin in (Union, types.UnionType):
        kinds = [describe(option) for option in options if option is not type(None)]
        return " or ".join(kinds) + (", or none" if type(None) in options else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(option) for option in options)
    if origin is tuple:
        return f"a list of {describe(options[0]).removeprefix('a ').removeprefix('an ')}s"
    names = {int: "an int", float: "a number", bool: "true or false", str: "a string"}
    return names.get(expected, f"a {getattr(expected, '__name__', expected)}")


def settings_lines(config: type, exclude: Collection[str] = ()) -> list[str]:
    """``name = default  # type`` for each field of ``config``: the list that the docs show.

    Example:
        >>> from embedcache.training import TrainingConfig
        >>> settings_lines(TrainingConfig)[1]
        'max_epochs = 10  # an int'
    """
    defaults, hints = field_defaults(config), field_types(config)
    return [
        f"{name} = {'(required)' if default is NO_DEFAULT else _toml(default)}  # {describe(hints[name])}"
        for name, default in defaults.items()
        if name not in exclude
    ]


def _toml(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)
