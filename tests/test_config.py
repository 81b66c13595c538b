"""Tests for sim.config: strict YAML -> frozen dataclass loading, overrides, and writing."""

from __future__ import annotations

import ast
import dataclasses
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.config as config_module
from sim.config import (
    ConfigError,
    apply_overrides,
    cfield,
    dump_yaml,
    from_dict,
    in_range,
    load_config,
    nonempty,
    nonnegative,
    positive,
    positive_even,
    to_dict,
    write_config,
)

# ------------------------------------------------------------------------------------------------
# Config classes used by the tests (module level, so get_type_hints resolves the string annotations)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Optim:
    lr: float = cfield(3e-4, **positive(), doc="learning rate")
    betas: tuple[float, float] = (0.9, 0.999)
    kind: Literal["adam", "sgd"] = "adam"
    dropout: float = cfield(0.0, **in_range(0, 1, hi_open=True))


@dataclass(frozen=True)
class Solver:
    resolution: int = cfield(64, **positive_even())
    viscosity: float = cfield(1e-3, **nonnegative())
    dt: float = 0.01


@dataclass(frozen=True)
class Train:
    optim: Optim = field(default_factory=Optim)
    epochs: int = cfield(10, **positive())
    warmup: int = 0
    amp: bool = False
    clip: float | None = None
    seeds: tuple[int, ...] = (0,)
    loss_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.warmup >= self.epochs:
            raise ValueError(f"warmup must be < epochs, got warmup={self.warmup}, epochs={self.epochs}")


@dataclass(frozen=True)
class Experiment:
    name: str = cfield("demo", **nonempty())
    solver: Solver = field(default_factory=Solver)
    train: Train = field(default_factory=lambda: Train(epochs=20))
    notes: Optional[str] = None  # noqa: UP045 -- typing.Optional must work too


@dataclass(frozen=True)
class Grid:
    resolution: int
    viscosity: float = 0.0


@dataclass(frozen=True)
class NeedsGrid:
    solver: Grid
    tag: str = "x"


@dataclass(frozen=True)
class WithDerived:
    n: int = 2
    twice: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "twice", 2 * self.n)


def _write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(cls: type, source, overrides=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(cls, source, overrides)
    err = info.value
    assert "\n" not in str(err)
    return err


# ------------------------------------------------------------------------------------------------
# Defaults and loading
# ------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = load_config(Experiment)
    assert cfg == Experiment()
    assert cfg.train.epochs == 20  # the enclosing field's default_factory, not Train's own default
    assert cfg.solver == Solver(resolution=64, viscosity=1e-3, dt=0.01)
    assert cfg.train.optim.betas == (0.9, 0.999)
    assert dataclasses.fields(Optim)[0].metadata["doc"] == "learning rate"


def test_load_yaml_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
name: run1
solver:
  resolution: 128
  viscosity: 1e-4     # YAML 1.1 would make this a string
  dt: 1               # int for a float field
train:
  amp: true
  clip: 0.5
  seeds: [1, 2, 3]
  loss_weights: {u: 1, v: 0.5}
  optim: {kind: sgd, betas: [0.8, 0.9]}
""",
    )
    cfg = load_config(Experiment, path)
    assert cfg.name == "run1"
    assert cfg.solver == Solver(resolution=128, viscosity=1e-4, dt=1.0)
    assert isinstance(cfg.solver.dt, float)
    assert cfg.train.amp is True
    assert cfg.train.clip == 0.5
    assert cfg.train.seeds == (1, 2, 3)
    assert cfg.train.loss_weights == {"u": 1.0, "v": 0.5}
    assert cfg.train.optim == Optim(kind="sgd", betas=(0.8, 0.9))
    assert cfg.train.epochs == 20  # not given: the default of Experiment.train
    assert load_config(Experiment, str(path)) == cfg


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(Experiment, _write(tmp_path, "# nothing set\n")) == Experiment()


def test_load_from_dict_instance_and_none() -> None:
    assert load_config(Experiment, {"solver": {"resolution": 32}}).solver.resolution == 32
    cfg = Experiment(name="inst")
    assert load_config(Experiment, cfg) is cfg
    changed = load_config(Experiment, cfg, ["train.epochs=5", "solver.dt=0.5"])
    assert changed == dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, epochs=5), solver=dataclasses.replace(cfg.solver, dt=0.5)
    )
    assert load_config(Experiment, None, ["name=x"]).name == "x"
    with pytest.raises(TypeError):
        load_config(Experiment, 42)
    with pytest.raises(TypeError):
        load_config(Experiment, None, "name=x")  # a bare str is not a sequence of overrides


def test_from_dict_accepts_nested_instances_and_tuples() -> None:
    cfg = from_dict(Experiment, {"solver": Solver(resolution=8), "train": {"seeds": (4, 5)}})
    assert cfg.solver == Solver(resolution=8)
    assert cfg.train.seeds == (4, 5)


def test_frozen() -> None:
    cfg = load_config(Experiment)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.solver.resolution = 2  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------
# Error messages: one line, source, dotted key, expected, given
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detail", "key"),
    [
        (
            "solver: {viscocity: 0.1}",
            "unknown key 'solver.viscocity' (expected one of: dt, resolution, viscosity)",
            "solver.viscocity",
        ),
        (
            "solver: {resolution: abc}",
            "solver.resolution: expected an int, got 'abc' (str)",
            "solver.resolution",
        ),
        (
            "solver: {viscosity: -0.001}",
            "solver.viscosity: expected a float >= 0, got -0.001",
            "solver.viscosity",
        ),
        (
            "solver: {resolution: 63}",
            "solver.resolution: expected a positive even int, got 63",
            "solver.resolution",
        ),
        (
            "solver: {resolution: 64.0}",
            "solver.resolution: expected an int, got 64.0 (float)",
            "solver.resolution",
        ),
        (
            "solver: {resolution: true}",
            "solver.resolution: expected an int, got True (bool)",
            "solver.resolution",
        ),
        ("solver: {dt: false}", "solver.dt: expected a float, got False (bool)", "solver.dt"),
        ("solver: {dt: '0.1'}", "solver.dt: expected a float, got '0.1' (str)", "solver.dt"),
        ("solver: 3", "solver: expected a mapping for Solver, got 3 (int)", "solver"),
        (
            "train: {optim: {kind: adamw}}",
            "train.optim.kind: expected one of 'adam', 'sgd', got 'adamw' (str)",
            "train.optim.kind",
        ),
        (
            "train: {optim: {dropout: 1.0}}",
            "train.optim.dropout: expected a float in [0, 1), got 1.0",
            "train.optim.dropout",
        ),
        (
            "train: {optim: {betas: [0.9]}}",
            "train.optim.betas: expected a list of 2 items [float, float], got [0.9] (list)",
            "train.optim.betas",
        ),
        ("train: {seeds: [1, 1.5]}", "train.seeds[1]: expected an int, got 1.5 (float)", "train.seeds[1]"),
        ("train: {seeds: 3}", "train.seeds: expected a list of int, got 3 (int)", "train.seeds"),
        ("train: {clip: x}", "train.clip: expected a float or null, got 'x' (str)", "train.clip"),
        ("train: {amp: 1}", "train.amp: expected a bool, got 1 (int)", "train.amp"),
        (
            "train: {loss_weights: {u: heavy}}",
            "train.loss_weights.u: expected a float, got 'heavy' (str)",
            "train.loss_weights.u",
        ),
        ("train: {loss_weights: {1: 2.0}}", "train.loss_weights: expected string keys, got 1 (int)", None),
        ("name: ''", "name: expected a non-empty str, got ''", "name"),
        ("name: 12", "name: expected a str, got 12 (int)", "name"),
        ("notes: [a]", "notes: expected a str or null, got ['a'] (list)", "notes"),
        ("train: {warmup: 30}", "train: warmup must be < epochs, got warmup=30, epochs=20", "train"),
    ],
)
def test_error_messages(tmp_path: Path, text: str, detail: str, key: str | None) -> None:
    path = _write(tmp_path, text + "\n")
    err = _error(Experiment, path)
    assert str(err) == f"{path}: {detail}"
    assert err.source == str(path)
    assert err.detail == detail
    if key is not None:
        assert err.key == key


def test_missing_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "solver: {viscosity: 0.1}\n")
    err = _error(NeedsGrid, path)
    assert str(err) == f"{path}: missing key 'solver.resolution' (expected an int)"
    assert err.key == "solver.resolution"
    assert str(_error(NeedsGrid, None)) == "<defaults>: missing key 'solver' (expected a mapping for Grid)"


def test_dict_source_label() -> None:
    err = _error(Experiment, {"solver": {"dt": "abc"}})
    assert str(err) == "<dict>: solver.dt: expected a float, got 'abc' (str)"
    with pytest.raises(ConfigError, match=r"^src: expected a mapping at the top level, got list$"):
        from_dict(Experiment, [1], source="src")  # type: ignore[arg-type]


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "configs" / "x.yaml"
    assert str(_error(Experiment, missing)) == f"{missing}: no such file"

    top_list = _write(tmp_path, "- 1\n- 2\n")
    assert str(_error(Experiment, top_list)) == f"{top_list}: expected a mapping at the top level, got list"

    bad = _write(tmp_path, "name: demo\nsolver: [1, 2\ntrain: {}\n", "bad.yaml")
    err = _error(Experiment, bad)
    assert str(err).startswith(f"{bad}: invalid YAML at line 3")
    assert err.key is None

    bad_indent = _write(tmp_path, "solver:\n  dt: 1\n resolution: 2\n", "indent.yaml")
    assert "invalid YAML at line 3" in str(_error(Experiment, bad_indent))


def test_duplicate_keys_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "solver:\n  dt: 0.1\n  resolution: 32\n  dt: 0.2\n")
    err = _error(Experiment, path)
    assert str(err) == f"{path}: duplicate key 'solver.dt' at line 4 (first given at line 2)"
    assert err.key == "solver.dt"
    top = _write(tmp_path, "name: a\nname: b\n", "top.yaml")
    assert "duplicate key 'name'" in str(_error(Experiment, top))


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    text = "solver:\n  <<: {dt: 0.5, resolution: 8}\n  dt: 0.25\n"
    cfg = load_config(Experiment, _write(tmp_path, text, "merge.yaml"))
    assert cfg.solver == Solver(resolution=8, dt=0.25)


def test_post_init_error_in_dict_and_config_error_from_post_init() -> None:
    @dataclass(frozen=True)
    class Checked:
        a: int = 1

        def __post_init__(self) -> None:
            if self.a == 3:
                raise ConfigError("a: three is not allowed\n(see docs)", key="a")

    err = _error(Checked, {"a": 3})
    assert str(err) == "<dict>: a: three is not allowed (see docs)"
    assert err.key == "a"


def test_config_error_is_value_error_and_pickles() -> None:
    err = ConfigError("solver.dt: expected a float, got 'x' (str)", source="x.yaml", key="solver.dt")
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.source, again.key) == (str(err), "x.yaml", "solver.dt")
    assert str(ConfigError("no source")) == "no source"


# ------------------------------------------------------------------------------------------------
# YAML reading: the exponent-float fix, everything else as safe_load
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("3E+4", 3e4), ("-2.5e-1", -0.25), ("2.5e3", 2500.0), ("+1e2", 100.0), (".5e1", 5.0)],
)
def test_exponent_floats(text: str, value: float) -> None:
    parsed = apply_overrides({}, [f"x={text}"])["x"]
    assert isinstance(parsed, float)
    assert parsed == value


@pytest.mark.parametrize(
    "text",
    ["1", "1.5", "-0.5e-3", "1_000", "0x1e3", "yes", "off", "null", "~", "", "e3", "1e", "abc", "[1, 2]",
     "{a: 1}", "'1e-3'", ".inf", "2024-01-01", "1:30"],
)  # fmt: skip
def test_everything_else_is_safe_load(text: str) -> None:
    assert apply_overrides({}, [f"x={text}"])["x"] == yaml.safe_load(text)


def test_stock_safe_loader_untouched() -> None:
    assert yaml.safe_load("a: 1e-3") == {"a": "1e-3"}


# ------------------------------------------------------------------------------------------------
# Overrides
# ------------------------------------------------------------------------------------------------


def test_apply_overrides_nested_and_pure() -> None:
    data = {"solver": {"dt": 0.1}, "train": {"seeds": [1]}}
    out = apply_overrides(
        data,
        ["solver.dt=3e-4", "train.optim.kind=sgd", "train.seeds=[1,2]", "notes=null", "train.clip=1"],
    )
    assert out == {
        "solver": {"dt": 3e-4},
        "train": {"seeds": [1, 2], "optim": {"kind": "sgd"}, "clip": 1},
        "notes": None,
    }
    assert data == {"solver": {"dt": 0.1}, "train": {"seeds": [1]}}  # input not modified
    out["train"]["seeds"].append(3)
    assert data["train"]["seeds"] == [1]


def test_overrides_build_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "solver: {resolution: 32}\ntrain: {optim: {lr: 1e-3}}\n")
    cfg = load_config(
        Experiment, path, ["train.optim.lr=3e-4", "solver.viscosity=0", "train.loss_weights.u=2"]
    )
    assert cfg.train.optim.lr == 3e-4
    assert cfg.solver == Solver(resolution=32, viscosity=0.0)
    assert cfg.train.loss_weights == {"u": 2.0}
    assert cfg.train.epochs == 20
    # later overrides win; a whole section can be replaced by a mapping
    cfg = load_config(Experiment, path, ["solver.dt=0.5", "solver.dt=0.25", "train={epochs: 3}"])
    assert cfg.solver.dt == 0.25
    assert cfg.train.epochs == 3 and cfg.train.optim == Optim()


@pytest.mark.parametrize(
    ("override", "detail"),
    [
        ("solver.dt=abc", "solver.dt: expected a float, got 'abc' (str)"),
        ("solver.resolution=63", "solver.resolution: expected a positive even int, got 63"),
        ("train.lrr=3", "unknown key 'train.lrr' (expected one of: amp, clip, epochs, loss_weights, optim, "
         "seeds, warmup)"),
        ("trian.epochs=3", "unknown key 'trian' (expected one of: name, notes, solver, train)"),
        ("solver.dt.x=1", "unknown key 'solver.dt.x' (solver.dt holds a float, not a mapping)"),
        ("train.loss_weights.u=x", "train.loss_weights.u: expected a float, got 'x' (str)"),
        ("train={epochs: 0}", "train.epochs: expected a positive int, got 0"),
        ("foo", "expected KEY=VALUE with a dotted key, e.g. train.lr=3e-4"),
        ("=3", "expected KEY=VALUE with a dotted key, e.g. train.lr=3e-4"),
        ("a..b=3", "expected KEY=VALUE with a dotted key, e.g. train.lr=3e-4"),
    ],
)  # fmt: skip
def test_override_errors_name_the_override(tmp_path: Path, override: str, detail: str) -> None:
    path = _write(tmp_path, "solver: {dt: 0.1}\n")
    err = _error(Experiment, path, [override])
    assert str(err) == f"override {override!r}: {detail}"
    assert err.source == f"override {override!r}"


def test_override_invalid_yaml_and_non_mapping_without_cls() -> None:
    with pytest.raises(ConfigError, match=r"^override 'x=\[1': invalid YAML at line 1") as info:
        apply_overrides({}, ["x=[1"])
    assert "\n" not in str(info.value)
    with pytest.raises(
        ConfigError, match=r"^override 'a.b=1': cannot set 'a.b': a is 3 \(int\), not a mapping$"
    ):
        apply_overrides({"a": 3}, ["a.b=1"])
    assert apply_overrides({"a": None}, ["a.b=1"]) == {"a": {"b": 1}}


def test_cross_field_error_after_override(tmp_path: Path) -> None:
    path = _write(tmp_path, "train: {epochs: 5}\n")
    err = _error(Experiment, path, ["train.warmup=5"])
    assert str(err) == f"{path}: train: warmup must be < epochs, got warmup=5, epochs=5"


# ------------------------------------------------------------------------------------------------
# Writing: round trip, field order, atomic replace
# ------------------------------------------------------------------------------------------------


def _sample() -> Experiment:
    return Experiment(
        name="1e-3",  # would read back as a float if not quoted
        solver=Solver(resolution=256, viscosity=1e-10, dt=1e16),
        train=Train(
            optim=Optim(lr=1e-3, kind="sgd"),
            epochs=7,
            warmup=2,
            amp=True,
            clip=None,
            seeds=(3, 1, 2),
            loss_weights={"yes": 1.0, "null": 0.5, "1e3": 2.0},
        ),
        notes="multi\nline: text # not a comment",
    )


def test_to_dict_and_dump_yaml() -> None:
    cfg = _sample()
    data = to_dict(cfg)
    assert data["train"]["seeds"] == [3, 1, 2]
    assert data["train"]["optim"]["betas"] == [0.9, 0.999]
    assert list(data) == ["name", "solver", "train", "notes"]
    text = dump_yaml(cfg)
    assert text.index("solver:") < text.index("train:") < text.index("notes:")
    assert "seeds: [3, 1, 2]" in text
    assert from_dict(Experiment, yaml.safe_load(text)) == cfg
    assert to_dict(WithDerived(n=3)) == {"n": 3}
    with pytest.raises(TypeError):
        to_dict(Experiment)


@pytest.mark.parametrize(
    "text", ["a\x85b", "a\u2028b\u2029", "cr\r\nlf", " padded ", "x: y", "#c", "~", "0o17"]
)
def test_awkward_strings_round_trip(text: str) -> None:
    cfg = Experiment(name=text, notes=text)
    assert from_dict(Experiment, yaml.safe_load(dump_yaml(cfg))) == cfg
    assert load_config(Experiment, None, [f"notes={dump_yaml(cfg).splitlines()[0][6:]}"]).notes == text


def test_write_config_round_trip_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    cfg = _sample()
    assert write_config(cfg, path) == path
    assert load_config(Experiment, path) == cfg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temp file left

    other = Experiment(name="other")
    write_config(other, path)  # overwrite=True by default
    assert load_config(Experiment, path) == other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]

    before = path.read_text()
    with pytest.raises(FileExistsError):
        write_config(cfg, path, overwrite=False)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]

    fresh = tmp_path / "fresh.yaml"
    write_config(cfg, fresh, overwrite=False)
    assert load_config(Experiment, fresh) == cfg

    with pytest.raises(FileNotFoundError):
        write_config(cfg, tmp_path / "no" / "such" / "dir.yaml")


def test_write_config_failure_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    write_config(Experiment(), path)
    before = path.read_text()

    def broken_replace(src: os.PathLike, dst: os.PathLike) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(config_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_config(_sample(), path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


# ------------------------------------------------------------------------------------------------
# Schema and helper checks
# ------------------------------------------------------------------------------------------------


def test_unsupported_annotation_is_type_error() -> None:
    @dataclass(frozen=True)
    class Bad:
        dims: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match=r"tuple\[X, \.\.\.\]"):
        load_config(Bad)


def test_cfield_misuse() -> None:
    with pytest.raises(TypeError):
        cfield(1, check=lambda v: v > 0)
    with pytest.raises(TypeError):
        cfield(1, expected="a positive int")
    with pytest.raises(ValueError):
        in_range(2, 1)


def test_module_imports_only_stdlib_and_yaml() -> None:
    tree = ast.parse(Path(config_module.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            roots.add((node.module or "").split(".")[0])
    assert "sim" not in roots
    assert roots - {"yaml", "__future__"} <= set(__import__("sys").stdlib_module_names)


# ------------------------------------------------------------------------------------------------
# Property: any valid config survives dump -> load
# ------------------------------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_floats = st.floats(allow_nan=False)
_nonneg = st.floats(min_value=0.0, allow_nan=False)


@st.composite
def _experiments(draw: st.DrawFn) -> Experiment:
    epochs = draw(st.integers(1, 10**9))
    optim = Optim(
        lr=draw(st.floats(min_value=1e-300, allow_nan=False)),
        betas=(draw(_floats), draw(_floats)),
        kind=draw(st.sampled_from(["adam", "sgd"])),
        dropout=draw(st.floats(min_value=0.0, max_value=1.0, exclude_max=True)),
    )
    train = Train(
        optim=optim,
        epochs=epochs,
        warmup=draw(st.integers(-(10**12), epochs - 1)),
        amp=draw(st.booleans()),
        clip=draw(st.none() | _floats),
        seeds=tuple(draw(st.lists(st.integers(), max_size=4))),
        loss_weights=draw(st.dictionaries(_text, _floats, max_size=3)),
    )
    solver = Solver(resolution=2 * draw(st.integers(1, 10**6)), viscosity=draw(_nonneg), dt=draw(_floats))
    return Experiment(
        name=draw(_text.filter(bool)), solver=solver, train=train, notes=draw(st.none() | _text)
    )


@pytest.fixture(scope="module")
def _out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roundtrip")


@settings(max_examples=60, deadline=None)
@given(cfg=_experiments())
def test_round_trip_property(cfg: Experiment, _out_dir: Path) -> None:
    text = dump_yaml(cfg)
    assert from_dict(Experiment, yaml.safe_load(text)) == cfg
    path = write_config(cfg, _out_dir / "cfg.yaml")
    assert load_config(Experiment, path) == cfg
