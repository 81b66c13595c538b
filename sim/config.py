"""Strict, typed experiment configs: frozen dataclasses read from YAML and ``a.b.c=value`` overrides.

Each stage defines its own frozen dataclasses with defaults in code; this module only reads, checks,
overrides and writes them. It imports nothing but the standard library and PyYAML.

Example::

    from dataclasses import dataclass, field
    from typing import Literal

    from sim.config import cfield, load_config, nonnegative, positive_even, write_config


    @dataclass(frozen=True)
    class SolverConfig:
        resolution: int = cfield(64, **positive_even(), doc="grid points per side")
        viscosity: float = cfield(1e-3, **nonnegative())
        dt: float | None = None  # None: chosen from the CFL condition


    @dataclass(frozen=True)
    class DataConfig:
        solver: SolverConfig = field(default_factory=SolverConfig)
        name: Literal["ns2d", "shallow_water"] = "ns2d"
        seeds: tuple[int, ...] = (0, 1, 2)


    cfg = load_config(DataConfig, "configs/data/ns2d_demo.yaml", ["solver.resolution=128"])
    write_config(cfg, "runs/demo/config.yaml")

Rules:

* Every key in the YAML must be a field of the dataclass (unknown keys are errors); fields without a
  default must be given. A mapping given for a nested dataclass field only sets the keys it names; the
  others keep the defaults of the enclosing field (its ``default``/``default_factory`` instance, else
  the nested class's own defaults). A mapping given for a ``dict[str, X]`` field replaces it whole.
* Types: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``X | None`` (and other unions: the
  first member that accepts the value wins), ``tuple[X, ...]`` and ``tuple[X, Y]`` (YAML lists),
  ``dict[str, X]`` and nested dataclasses (YAML mappings). An int is accepted for a float (and becomes
  a float); a bool is never an int or a float; strings are never converted to numbers.
* YAML is read with ``yaml.safe_load`` semantics plus two fixes: ``1e-3``, ``3E+4`` and ``2.5e3`` are
  floats (PyYAML's YAML 1.1 resolver leaves them strings), and a key repeated in one mapping is an error.
* Value constraints live in the field: ``cfield(default, check=pred, expected="text")`` or one of the
  helpers (``positive()``, ``nonnegative()``, ``positive_even()``, ``in_range(lo, hi)``, ``nonempty()``),
  each a ``{"check": ..., "expected": ...}`` dict to unpack into ``cfield``. In ``expected``, ``{type}``
  and ``{a_type}`` stand for the field's type name ("int", "an int").
* Every problem is a :class:`ConfigError`: one line with the source, the dotted key, what was expected
  and what was given, e.g. ``configs/data/x.yaml: solver.viscosity: expected a float >= 0, got -0.001``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import tempfile
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar, Union

import yaml

__all__ = [
    "ConfigError",
    "Constraint",
    "apply_overrides",
    "cfield",
    "dump_yaml",
    "from_dict",
    "in_range",
    "load_config",
    "nonempty",
    "nonnegative",
    "positive",
    "positive_even",
    "read_yaml",
    "to_dict",
    "write_config",
]

_T = TypeVar("_T")

_META_KEY = "sim.config"
_NONE_TYPE = type(None)
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Floats that YAML 1.1 (and so PyYAML) leaves as strings: an exponent without a dot in the mantissa
# (1e-3, 3E+4) or without a sign (2.5e3). Everything the stock resolver already handles is unchanged.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_OVERRIDE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*")
_MAX_REPR = 80
_BREAKS = frozenset("\r\x85\u2028\u2029")


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A config that cannot be read or does not fit its dataclass; the message is always one line.

    ``str(err)`` is ``"SOURCE: DETAIL"``, e.g.
    ``configs/data/x.yaml: solver.resolution: expected an int, got 'abc' (str)``.

    Args:
        detail: what is wrong (line breaks are folded into spaces).
        source: where the config came from: a file path, ``override 'solver.dt=abc'`` or ``<dict>``.
        key: the dotted key concerned, if any.

    Attributes:
        source: as given (may be None).
        key: as given (may be None).
        detail: the message without the source.
    """

    def __init__(self, detail: str, *, source: str | None = None, key: str | None = None) -> None:
        self.detail = re.sub(r"\s*[\r\n]+\s*", " ", str(detail)).strip()
        self.source = source
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.source}: {self.detail}" if self.source else self.detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.detail, self.source, self.key))


def _rebuild_error(cls: type[ConfigError], detail: str, source: str | None, key: str | None) -> ConfigError:
    return cls(detail, source=source, key=key)


class _Mismatch(Exception):
    """Internal: the value does not have the shape of the annotation at this very key."""


# --------------------------------------------------------------------------------------------------
# Field constraints
# --------------------------------------------------------------------------------------------------


class Constraint(TypedDict):
    """Keyword arguments for :func:`cfield`: a predicate and the text shown when it fails."""

    check: Callable[[Any], bool]
    expected: str


@dataclasses.dataclass(frozen=True)
class _FieldSpec:
    check: Callable[[Any], bool] | None
    expected: str | None
    doc: str | None


def cfield(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    check: Callable[[Any], bool] | None = None,
    expected: str | None = None,
    doc: str | None = None,
) -> Any:
    """A ``dataclasses.field`` that also carries a value constraint and a description.

    Example::

        resolution: int = cfield(64, **positive_even())
        dropout: float = cfield(0.0, **in_range(0, 1, hi_open=True))
        warmup: int = cfield(100, check=lambda n: n % 10 == 0, expected="a multiple of 10")

    Args:
        default: the default value (omit for a required field).
        default_factory: a zero-argument callable making the default (for nested dataclasses).
        check: a predicate on the value after type conversion; a falsy result is a
            :class:`ConfigError`. It is not applied to defaults, nor to None in an optional field.
        expected: the text for the message, e.g. ``"a float >= 0"``; ``{type}``/``{a_type}`` are
            replaced with the field's type name (``"int"``/``"an int"``). Required with ``check``.
        doc: a one-line description of the field (kept in the field metadata).

    Returns:
        A ``dataclasses.Field`` (typed ``Any`` so it can be the default of any annotation).

    Raises:
        TypeError: ``check`` without ``expected`` or the reverse, or a non-callable ``check``.
        ValueError: both ``default`` and ``default_factory`` (from ``dataclasses.field``).
    """
    if (check is None) != (expected is None):
        raise TypeError(
            "cfield: give 'check' and 'expected' together (expected is the text shown on failure)"
        )
    if check is not None and not callable(check):
        raise TypeError(f"cfield: 'check' must be callable, got {check!r}")
    spec = _FieldSpec(check=check, expected=expected, doc=doc)
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={_META_KEY: spec, "doc": doc}
    )


def positive() -> Constraint:
    """Constraint ``value > 0``; expected text ``"a positive {type}"``.

    Returns:
        Keyword arguments for :func:`cfield`.
    """
    return {"check": lambda v: v > 0, "expected": "a positive {type}"}


def nonnegative() -> Constraint:
    """Constraint ``value >= 0``; expected text ``"{a_type} >= 0"`` (e.g. "a float >= 0").

    Returns:
        Keyword arguments for :func:`cfield`.
    """
    return {"check": lambda v: v >= 0, "expected": "{a_type} >= 0"}


def finite_positive() -> Constraint:
    """Constraint ``0 < value < inf``; expected text ``"a finite float > 0"``.

    Returns:
        Keyword arguments for :func:`cfield`.
    """
    return {"check": lambda v: 0 < v < math.inf, "expected": "a finite float > 0"}


def device_name() -> Constraint:
    """Constraint: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` (resolved by ``sim.runtime.resolve_device``).

    Returns:
        Keyword arguments for :func:`cfield`.
    """
    return {
        "check": lambda v: v in ("auto", "cpu") or v.startswith("cuda"),
        "expected": "'auto', 'cpu' or 'cuda[:N]'",
    }


def positive_even() -> Constraint:
    """Constraint ``value > 0 and value % 2 == 0``; expected text ``"a positive even {type}"``.

    Returns:
        Keyword arguments for :func:`cfield`.
    """
    return {"check": lambda v: v > 0 and v % 2 == 0, "expected": "a positive even {type}"}


def in_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Constraint:
    """Constraint ``lo <= value <= hi`` (strict at an open end); expected text e.g. ``"a float in [0, 1)"``.

    Args:
        lo: lower bound.
        hi: upper bound.
        lo_open: exclude ``lo``.
        hi_open: exclude ``hi``.

    Returns:
        Keyword arguments for :func:`cfield`.

    Raises:
        ValueError: ``lo > hi``.
    """
    if lo > hi:
        raise ValueError(f"in_range: expected lo <= hi, got lo={lo!r}, hi={hi!r}")

    def check(v: Any) -> bool:
        above = v > lo if lo_open else v >= lo
        below = v < hi if hi_open else v <= hi
        return above and below

    interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    return {"check": check, "expected": f"{{a_type}} in {interval}"}


def nonempty() -> Constraint:
    """Constraint ``len(value) > 0`` for str, tuple and dict fields; expected text ``"a non-empty {type}"``.

    Returns:
        Keyword arguments for :func:`cfield`.
    """
    return {"check": lambda v: len(v) > 0, "expected": "a non-empty {type}"}


# --------------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (duplicate keys are checked separately)."""


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` quoting strings that :class:`_Loader` reads as floats; leaf lists in flow style."""


# add_implicit_resolver copies the inherited table first, so yaml.SafeLoader itself is unchanged.
_Loader.add_implicit_resolver(_FLOAT_TAG, _EXP_FLOAT, list("-+0123456789."))
_Dumper.add_implicit_resolver(_FLOAT_TAG, _EXP_FLOAT, list("-+0123456789."))


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(item, (list, tuple, dict)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # PyYAML writes NEL and the Unicode line/paragraph separators raw in plain and single-quoted
    # scalars and reads them back as line breaks (folded to spaces); double quotes escape them.
    style = '"' if any(ch in _BREAKS for ch in data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def _yaml_error_text(err: yaml.YAMLError) -> str:
    """One line for a PyYAML error, with 1-based line and column."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        text = f"invalid YAML{where}: {err.problem or err.context or 'syntax error'}"
        if err.problem and err.context:
            started = f" at line {err.context_mark.line + 1}" if err.context_mark is not None else ""
            text += f" ({err.context}{started})"
        return text
    return f"invalid YAML: {err}"


def _check_duplicate_keys(node: yaml.Node, source: str) -> None:
    """Raise on a key given twice in one mapping (PyYAML silently keeps the last)."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(node, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:  # aliases may share (or even cycle through) nodes
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    ident = (key_node.tag, key_node.value)
                    dotted = _join(path, key_node.value)
                    if ident in first:
                        line, first_line = key_node.start_mark.line + 1, first[ident].start_mark.line + 1
                        raise ConfigError(
                            f"duplicate key '{dotted}' at line {line} (first given at line {first_line})",
                            source=source,
                            key=dotted,
                        )
                    first[ident] = key_node
                    stack.append((value_node, dotted))
                else:
                    stack.append((value_node, path))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))


def _parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)`` with the float fix and duplicate-key check; errors as ConfigError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_error_text(err), source=source) from err
    finally:
        loader.dispose()


def _read_yaml(path: Path, source: str) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (an empty file is an empty mapping)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("no such file", source=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", source=source) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text ({err.reason} at byte {err.start})", source=source) from None
    except OSError as err:
        raise ConfigError(f"cannot read ({err.strerror or err})", source=source) from err
    data = _parse_yaml(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", source=source)
    return data


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping with this module's loader (``1e-3`` is a float, duplicate keys are errors).

    For files that hold several sections (``model:``, ``train:``, ``data:``), each read into its own
    dataclass with :func:`from_dict`.

    Args:
        path: the YAML file.

    Returns:
        The top-level mapping (empty for an empty file).

    Raises:
        ConfigError: missing or unreadable file, bad YAML, or a top level that is not a mapping.
    """
    return _read_yaml(Path(path), str(path))


# --------------------------------------------------------------------------------------------------
# Schema: annotations resolved once per class
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FieldInfo:
    name: str
    type: Any
    field: dataclasses.Field
    spec: _FieldSpec | None


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _require_dataclass(cls: Any) -> None:
    if not _is_dataclass_type(cls):
        raise TypeError(f"expected a dataclass type, got {cls!r}")


@functools.lru_cache(maxsize=256)
def _schema(cls: type) -> Mapping[str, _FieldInfo]:
    """The init fields of a dataclass with resolved annotations, in field order."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError as err:
        raise TypeError(f"cannot resolve the annotations of {cls.__qualname__}: {err}") from err
    out: dict[str, _FieldInfo] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        _check_annotation(tp, f"{cls.__qualname__}.{f.name}")
        out[f.name] = _FieldInfo(f.name, tp, f, f.metadata.get(_META_KEY))
    return types.MappingProxyType(out)


@functools.lru_cache(maxsize=256)
def _validate_classes(cls: type) -> None:
    """Check the annotations of ``cls`` and of every dataclass reachable from it (cycles allowed)."""
    todo, seen = [cls], {cls}
    while todo:
        for info in _schema(todo.pop()).values():
            for tp in _nested_dataclasses(info.type):
                if tp not in seen:
                    seen.add(tp)
                    todo.append(tp)


def _nested_dataclasses(tp: Any) -> list[type]:
    if _is_dataclass_type(tp):
        return [tp]
    if typing.get_origin(tp) is Literal:
        return []
    return [dc for arg in typing.get_args(tp) for dc in _nested_dataclasses(arg)]


def _check_annotation(tp: Any, where: str) -> None:
    """Raise TypeError for an annotation this module cannot read from YAML."""
    origin = typing.get_origin(tp)
    if tp in (int, float, bool, str, _NONE_TYPE) or _is_dataclass_type(tp) or origin is Literal:
        return
    if _is_union(tp):
        for arg in typing.get_args(tp):
            _check_annotation(arg, where)
        return
    if origin is tuple and typing.get_args(tp):
        for arg in typing.get_args(tp):
            if arg is not Ellipsis:
                _check_annotation(arg, where)
        return
    if origin is dict and typing.get_args(tp):
        key_tp, value_tp = typing.get_args(tp)
        if key_tp is not str:
            raise TypeError(f"{where}: unsupported annotation {tp!r}: dict keys must be str")
        _check_annotation(value_tp, where)
        return
    hint = " (use tuple[X, ...]: configs are immutable)" if tp is list or origin is list else ""
    raise TypeError(
        f"{where}: unsupported annotation {tp!r}{hint}; supported: int, float, bool, str, Literal, "
        "X | None, tuple[X, ...], tuple[X, Y], dict[str, X] and dataclasses"
    )


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


# --------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _got(value: Any) -> str:
    return f"{_short_repr(value)} ({type(value).__name__})"


def _article(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _name(tp: Any) -> str:
    """A short name for a type in messages: int, float, null, list, mapping, a class name."""
    origin = typing.get_origin(tp)
    if tp is _NONE_TYPE:
        return "null"
    if isinstance(tp, type) and origin is None:
        return tp.__name__
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if _is_union(tp):
        return " | ".join(_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "list"
    if origin is dict:
        return "mapping"
    return str(tp)


def _bare_name(tp: Any) -> str:
    """The name used for ``{type}`` in constraint texts: an optional type without its None."""
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not _NONE_TYPE]
        if len(args) == 1:
            return _bare_name(args[0])
    if typing.get_origin(tp) is Literal:
        return "value"
    return _name(tp)


def _expected(tp: Any) -> str:
    """What a value of this annotation looks like, for 'expected ...' messages."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is _NONE_TYPE:
        return "null"
    if tp in (int, float, bool, str):
        return _article(tp.__name__)
    if _is_dataclass_type(tp):
        return f"a mapping for {tp.__name__}"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if _is_union(tp):
        ordered = [a for a in args if a is not _NONE_TYPE] + [a for a in args if a is _NONE_TYPE]
        return " or ".join(_expected(a) for a in ordered)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_name(args[0])}"
        if not args or args == ((),):
            return "an empty list"
        return f"a list of {len(args)} items [{', '.join(_name(a) for a in args)}]"
    if origin is dict:
        return f"a mapping of str to {_name(args[1])}"
    return _article(_name(tp))


def _constraint_text(spec: _FieldSpec, tp: Any) -> str:
    bare = _bare_name(tp)
    assert spec.expected is not None
    return spec.expected.replace("{a_type}", _article(bare)).replace("{type}", bare)


# --------------------------------------------------------------------------------------------------
# Building dataclasses from plain data
# --------------------------------------------------------------------------------------------------


def _convert(tp: Any, value: Any, path: str, source: str, base: Any = None) -> Any:
    """Convert ``value`` to the annotation ``tp``; ``base`` is the default instance for a dataclass."""
    try:
        return _convert_here(tp, value, path, source, base)
    except _Mismatch:
        raise ConfigError(
            f"{_at(path)}expected {_expected(tp)}, got {_got(value)}", source=source, key=path or None
        ) from None


def _convert_here(tp: Any, value: Any, path: str, source: str, base: Any) -> Any:
    """As :func:`_convert`, but a value of the wrong shape at ``path`` itself raises ``_Mismatch``."""
    origin = typing.get_origin(tp)
    if tp is _NONE_TYPE:
        if value is None:
            return None
        raise _Mismatch
    if tp is bool or tp is str:
        if isinstance(value, tp):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, float):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise _Mismatch from None
        raise _Mismatch
    if origin is Literal:
        for allowed in typing.get_args(tp):
            if type(value) is type(allowed) and value == allowed:
                return allowed
        raise _Mismatch
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and _NONE_TYPE in args:
            return None
        for arm in args:
            if arm is _NONE_TYPE:
                continue
            try:
                return _convert_here(arm, value, path, source, base)
            except _Mismatch:
                continue
        raise _Mismatch
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch
        return _build(tp, value, path, source, base if isinstance(base, tp) else None)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        else:
            item_types = [] if args == ((),) else list(args)
            if len(value) != len(item_types):
                raise _Mismatch
        return tuple(
            _convert(item_tp, item, f"{path}[{i}]", source)
            for i, (item_tp, item) in enumerate(zip(item_types, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        value_tp = typing.get_args(tp)[1]
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"{_at(path)}expected string keys, got {_got(key)}", source=source, key=path or None
                )
            out[key] = _convert(value_tp, item, _join(path, key), source)
        return out
    raise TypeError(f"{_at(path)}unsupported annotation {tp!r}")


def _check_value(info: _FieldInfo, value: Any, path: str, source: str) -> None:
    """Apply the field's constraint (not to None: the type already allowed it)."""
    spec = info.spec
    if spec is None or spec.check is None or value is None:
        return
    if not spec.check(value):
        raise ConfigError(
            f"{path}: expected {_constraint_text(spec, info.type)}, got {_short_repr(value)}",
            source=source,
            key=path,
        )


def _unknown_key(key: str, schema: Mapping[str, _FieldInfo], source: str) -> ConfigError:
    names = ", ".join(sorted(schema))
    return ConfigError(f"unknown key '{key}' (expected one of: {names})", source=source, key=key)


def _build(cls: type[_T], data: Mapping, path: str, source: str, base: Any) -> _T:
    """Build ``cls`` from a mapping; missing keys come from ``base`` (an instance) or the defaults."""
    schema = _schema(cls)
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(
                f"{_at(path)}expected string keys, got {_got(key)}", source=source, key=path or None
            )
        if key not in schema:
            raise _unknown_key(_join(path, key), schema, source)
    kwargs: dict[str, Any] = {}
    for name, info in schema.items():
        key = _join(path, name)
        if name in data:
            value = data[name]
            sub_base = None
            if isinstance(value, Mapping) and _nested_dataclasses(info.type):
                sub_base = getattr(base, name) if base is not None else _field_default(info.field)
            converted = _convert(info.type, value, key, source, sub_base)
            _check_value(info, converted, key, source)
            kwargs[name] = converted
        elif base is not None:
            kwargs[name] = getattr(base, name)
        elif info.field.default is dataclasses.MISSING and info.field.default_factory is dataclasses.MISSING:
            expected = _constraint_text(info.spec, info.type) if info.spec and info.spec.expected else None
            raise ConfigError(
                f"missing key '{key}' (expected {expected or _expected(info.type)})", source=source, key=key
            )
    try:
        return cls(**kwargs)
    except ValueError as err:  # ConfigError included: __post_init__ validation
        detail = err.detail if isinstance(err, ConfigError) else str(err) or type(err).__name__
        key = _join(path, err.key) if isinstance(err, ConfigError) and err.key else (path or None)
        raise ConfigError(f"{_at(path)}{detail}", source=source, key=key) from err


def from_dict(cls: type[_T], data: Mapping[str, Any], *, source: str = "<dict>") -> _T:
    """Build a config dataclass from plain data, strictly.

    Nested mappings become nested dataclasses, lists become tuples; every key must be a field, every
    field without a default must be given, every value must have the field's type and pass its
    constraint. Errors name the dotted key, e.g. ``solver.resolution``.

    Args:
        cls: the (frozen) dataclass type.
        data: the mapping, e.g. from YAML; nested dataclass instances are accepted as values.
        source: where ``data`` came from, used as the prefix of error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: an unknown or missing key, a wrong type, a failed constraint, a ``ValueError``
            raised by ``__post_init__``, or ``data`` not a mapping.
        TypeError: ``cls`` is not a dataclass or has an annotation this module does not support.
    """
    _require_dataclass(cls)
    _validate_classes(cls)
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", source=source)
    return _build(cls, data, "", source, None)


# --------------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------------


def _parse_override(text: str) -> tuple[list[str], Any, str]:
    """Split ``a.b=value`` into key parts and the YAML-parsed value; also return the error source."""
    if not isinstance(text, str):
        raise TypeError(f"an override must be a str like 'train.lr=3e-4', got {text!r}")
    source = f"override {text!r}"
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _OVERRIDE_KEY.fullmatch(key):
        raise ConfigError("expected KEY=VALUE with a dotted key, e.g. train.lr=3e-4", source=source)
    return key.split("."), _parse_yaml(raw, source), source


def _mapping_arm(tp: Any) -> Any:
    """The dataclass or dict type a mapping at this annotation would fill, or None."""
    if _is_dataclass_type(tp) or typing.get_origin(tp) is dict:
        return tp
    if _is_union(tp):
        for arg in typing.get_args(tp):
            if _is_dataclass_type(arg) or typing.get_origin(arg) is dict:
                return arg
    return None


def _check_override(cls: type, parts: list[str], value: Any, source: str) -> None:
    """Check that ``parts`` names a field of ``cls`` and that ``value`` fits it."""
    tp: Any = cls
    info: _FieldInfo | None = None
    base: Any = None  # the default instance at the current level, if the defaults make one
    for i, part in enumerate(parts):
        dotted = ".".join(parts[: i + 1])
        here = _mapping_arm(tp)
        if here is None:
            parent = ".".join(parts[:i])
            raise ConfigError(
                f"unknown key '{dotted}' ({parent} holds {_expected(tp)}, not a mapping)",
                source=source,
                key=dotted,
            )
        if _is_dataclass_type(here):
            schema = _schema(here)
            if part not in schema:
                raise _unknown_key(dotted, schema, source)
            info = schema[part]
            base = getattr(base, part) if isinstance(base, here) else _field_default(info.field)
            tp = info.type
        else:
            info, base, tp = None, None, typing.get_args(here)[1]
    path = ".".join(parts)
    converted = _convert(tp, value, path, source, base if dataclasses.is_dataclass(base) else None)
    if info is not None:
        _check_value(info, converted, path, source)


def _copy_tree(data: Any) -> Any:
    """Copy nested mappings into dicts and lists into lists; other values are shared."""
    if isinstance(data, Mapping):
        return {key: _copy_tree(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_copy_tree(value) for value in data]
    return data


def apply_overrides(
    data: Mapping[str, Any], overrides: Sequence[str], *, cls: type | None = None
) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b.c=value`` override set.

    The value is parsed as YAML (``train.lr=3e-4`` a float, ``model.name=gcnn`` a str, ``x=null``
    None, ``dims=[1,2]`` a list, ``x=`` None). Missing intermediate mappings are created (as is one
    where the data holds null); a mapping value replaces the whole section.

    Args:
        data: nested mappings, e.g. a YAML file's content; not modified.
        overrides: strings ``KEY=VALUE`` with a dotted key, applied in order.
        cls: the config dataclass; when given, each key must be one of its (nested) fields and each
            value must fit the field's type and constraint.

    Returns:
        A new nested dict.

    Raises:
        ConfigError: bad syntax, invalid YAML in a value, a key that ``cls`` does not define, a value
            of the wrong type or range, or a key below a value that is not a mapping; the source is
            the override, e.g. ``override 'train.lrr=3': unknown key 'train.lrr' (...)``.
        TypeError: ``overrides`` is a single str, or ``cls`` is not a dataclass.
    """
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a sequence of strings, got the str {overrides!r}")
    if cls is not None:
        _require_dataclass(cls)
        _validate_classes(cls)
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a mapping, got {type(data).__name__}")
    result: dict[str, Any] = _copy_tree(data)
    for text in overrides:
        parts, value, source = _parse_override(text)
        if cls is not None:
            _check_override(cls, parts, value, source)
        node = result
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"cannot set '{'.'.join(parts)}': {prefix} is {_got(child)}, not a mapping",
                    source=source,
                    key=".".join(parts),
                )
            node = child
        node[parts[-1]] = value
    return result


# --------------------------------------------------------------------------------------------------
# Loading and writing
# --------------------------------------------------------------------------------------------------


def load_config(
    cls: type[_T],
    source: str | os.PathLike | Mapping[str, Any] | _T | None = None,
    overrides: Sequence[str] = (),
) -> _T:
    """Load a config: defaults in code, then a YAML file (or mapping), then command-line overrides.

    Example::

        cfg = load_config(DataConfig, "configs/data/ns2d_demo.yaml", ["solver.viscosity=1e-4"])

    Args:
        cls: the (frozen) config dataclass.
        source: a YAML file path, a mapping, an instance of ``cls`` (returned as is when there are no
            overrides), or None for the defaults. An empty YAML file means all defaults.
        overrides: ``KEY=VALUE`` strings with dotted keys (see :func:`apply_overrides`).

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: the file is missing or not valid YAML, or the config does not fit ``cls``; the
            message names the file (or ``<dict>``, ``<defaults>``, the override) and the dotted key.
        TypeError: ``cls`` is not a dataclass, or ``source`` is none of the kinds above.
    """
    _require_dataclass(cls)
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a sequence of strings, got the str {overrides!r}")
    if source is None:
        data: Mapping[str, Any] = {}
        label = "<defaults>"
    elif isinstance(source, cls):
        if not overrides:
            return source
        data, label = to_dict(source), f"<{cls.__name__} instance>"
    elif isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        data = _read_yaml(Path(source), label)
    elif isinstance(source, Mapping):
        data, label = source, "<dict>"
    else:
        raise TypeError(
            f"source must be a YAML path, a mapping, a {cls.__name__} or None, got {type(source).__name__}"
        )
    if overrides:
        data = apply_overrides(data, overrides, cls=cls)
    return from_dict(cls, data, source=label)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a config to plain Python data (nested dicts, tuples as lists), in field order.

    Fields with ``init=False`` are left out, so ``from_dict(type(cfg), to_dict(cfg)) == cfg``.

    Args:
        cfg: a dataclass instance.

    Returns:
        A nested dict suitable for YAML.

    Raises:
        TypeError: ``cfg`` is not a dataclass instance.
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a dataclass instance, got {type(cfg).__name__}")
    return _plain(cfg)


def dump_yaml(cfg: Any) -> str:
    """The config as YAML text, keys in field order, lists of scalars in flow style (``[1, 2]``).

    ``from_dict(type(cfg), yaml.safe_load(dump_yaml(cfg))) == cfg`` (NaN aside): strings that would
    read back as something else (``'1e-3'``, ``'yes'``, ``'null'``) are quoted.

    Args:
        cfg: a dataclass instance.

    Returns:
        YAML text ending in a newline.

    Raises:
        TypeError: ``cfg`` is not a dataclass instance.
    """
    return yaml.dump(
        to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def write_config(cfg: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write the config as YAML, atomically: a temporary file in the same folder, then ``os.replace``.

    Readers see either the old file or the complete new one; on failure nothing is left behind.

    Args:
        cfg: a dataclass instance.
        path: the YAML file to write; its folder must exist.
        overwrite: replace an existing file; if False, an existing file is an error.

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is False.
        FileNotFoundError: the folder does not exist.
        TypeError: ``cfg`` is not a dataclass instance.
    """
    path = Path(path)
    text = dump_yaml(cfg)
    exists = f"{path}: already exists (pass overwrite=True to replace it)"
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(exists)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist (create it first)")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the file appeared in the meantime; never clobbers
            except FileExistsError:
                raise FileExistsError(exists) from None
            except OSError:  # no hard links on this filesystem
                if os.path.lexists(path):
                    raise FileExistsError(exists) from None
                os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
