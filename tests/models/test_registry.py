"""Models by name: every shipped config builds, runs and keeps (or, for CNNs, breaks) the symmetry;
build_model from paths, mappings and dataclasses; one-line config errors."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
import yaml

import sim
from sim.config import ConfigError
from sim.models import (
    MODELS,
    SPHERE_MODELS,
    CNNResNet,
    CNNUNet,
    GCNNResNet,
    GCNNUNet,
    ModelConfig,
    build_model,
    count_parameters,
    load_model_config,
)
from sim.testing import assert_equivariant, equivariance_errors

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "ns2d").glob("*.yaml"))
NAMES = [p.name for p in CONFIGS]
# exactly equivariant on the grid: the G-CNNs and the steerable models (tested on their D4/C4 restriction)
GCNN_NAMES = [p.name for p in CONFIGS if load_model_config(p).name.startswith(("gcnn", "steerable"))]
CNN_NAMES = [name for name in NAMES if name not in GCNN_NAMES]
TINY = dict(
    name="gcnn_resnet",
    in_fields="2x pseudoscalar",
    out_fields="1x pseudoscalar",
    hidden=2,
    blocks=1,
    kernel_size=3,
)


def test_the_issue_configs_are_shipped():
    assert {"cnn.yaml", "cnn_unet.yaml", "gcnn_p4.yaml", "gcnn_p4m.yaml", "gcnn_unet_p4m.yaml"} <= set(NAMES)


def test_registry_names_are_the_config_names():
    names = set(typing.get_args(typing.get_type_hints(ModelConfig)["name"]))
    assert set(MODELS) | set(SPHERE_MODELS) == names and not set(MODELS) & set(SPHERE_MODELS)


# ------------------------------------------------------------------------------------------------
# Every shipped config
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> dict[str, torch.nn.Module]:
    return {p.name: build_model(p) for p in CONFIGS}


@pytest.mark.parametrize("name", NAMES)
def test_shipped_config_shapes(shipped, name):
    model = shipped[name]
    out = load_model_config(CONFIGS[[p.name for p in CONFIGS].index(name)]).out_fields
    # 4 frames + the forcing -> the next vorticity frame; or the velocity (u, v) for the velocity model
    kind = str(model.out_type).split(" of ")[0]
    assert (kind, model.out_channels) in [("1x pseudoscalar", 1), ("1x vector", 2)]
    assert out.replace(" ", "") in str(model.out_type).replace(" ", "")
    inputs = "4x vector + 1x pseudoscalar" if kind == "1x vector" else "5x pseudoscalar"
    assert model.in_channels == 4 * model.out_channels + 1 and str(model.in_type).startswith(inputs)
    with torch.no_grad():
        y = model(torch.randn(2, model.in_channels, 32, 32))
    assert y.shape == (2, model.out_channels, 32, 32) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", GCNN_NAMES)
def test_shipped_gcnn_configs_are_equivariant(shipped, name):
    model = shipped[name]
    assert_equivariant(model, size=16, batch=1)  # float64 and float32, default tolerances
    if isinstance(model, GCNNResNet):  # circular padding: exact on non-square grids too
        assert_equivariant(model, size=(16, 8), batch=1, dtypes=(torch.float64,))
    report = equivariance_errors(model, size=16, batch=2, train=True)  # GroupNorm in train mode
    assert report.worst < 1e-10


@pytest.mark.parametrize("name", CNN_NAMES)
def test_shipped_cnn_configs_are_not_equivariant(shipped, name):
    report = equivariance_errors(shipped[name], size=32, batch=1)
    assert report.worst > 1e-2, report.errors


@pytest.mark.parametrize(
    ("cnn", "gcnn"), [("cnn.yaml", "gcnn_p4m.yaml"), ("cnn_unet.yaml", "gcnn_unet_p4m.yaml")]
)
def test_shipped_cnn_parameter_counts_match_their_gcnn(shipped, cnn, gcnn):
    got, target = count_parameters(shipped[cnn]), count_parameters(shipped[gcnn])
    assert abs(got - target) <= 0.1 * target, (got, target)


def test_shipped_parameter_counts(shipped):
    # The figures quoted in the configs' comments.
    expected = {
        "gcnn_p4m.yaml": 103_816,  # 8 regular fields of D4
        "gcnn_p4.yaml": 98_748,  # 11 regular fields of C4
        "cnn.yaml": 100_695,  # width 22, matched to gcnn_p4m
        "gcnn_unet_p4m.yaml": 987_568,  # 8/16/32 regular fields of D4
        "cnn_unet.yaml": 1_023_984,  # width 23, matched to gcnn_unet_p4m
    }
    assert {name: count_parameters(shipped[name]) for name in expected} == expected
    assert (shipped["cnn.yaml"].width, shipped["cnn_unet.yaml"].width) == (22, 23)


# ------------------------------------------------------------------------------------------------
# build_model from every kind of source
# ------------------------------------------------------------------------------------------------


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_build_model_from_path_str_dict_and_dataclass(tmp_path):
    path = ROOT / "configs/ns2d/gcnn_p4.yaml"
    cfg = load_model_config(path)
    assert cfg == load_model_config(str(path)) == load_model_config(yaml.safe_load(path.read_text()))
    assert cfg.group == "P4" and cfg.hidden == 11
    assert load_model_config(cfg) is cfg
    for source in (path, str(path), {"model": dataclasses.asdict(cfg)}, dataclasses.asdict(cfg), cfg):
        model = build_model(source)
        assert isinstance(model, GCNNResNet) and model.group.name == "C4" and model.hidden == 11


def test_yaml_with_and_without_model_section(tmp_path):
    top = _write(tmp_path / "top.yaml", TINY)
    nested = _write(
        tmp_path / "experiment.yaml",
        {"model": TINY, "train": {"lr": 3e-4, "whatever": [1, 2]}, "data": {"path": "x.nc"}},
    )
    assert load_model_config(top) == load_model_config(nested) == ModelConfig(**TINY)
    assert isinstance(build_model(nested), GCNNResNet)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("gcnn_resnet", GCNNResNet), ("gcnn_unet", GCNNUNet), ("cnn_resnet", CNNResNet), ("cnn_unet", CNNUNet)],
)
def test_every_registered_name_builds(name, cls):
    extra = {"width": 4} if name.startswith("cnn") else {}
    model = build_model({**TINY, "name": name, **extra})
    assert type(model) is cls
    assert model(torch.randn(1, 2, 8, 8)).shape == (1, 1, 8, 8)


def test_overrides(tmp_path):
    nested = _write(tmp_path / "experiment.yaml", {"model": TINY, "train": {}})
    assert load_model_config(nested, ["model.hidden=5", "model.group=C4"]).hidden == 5
    top = _write(tmp_path / "top.yaml", TINY)
    assert build_model(top, ["kernel_size=5"]).kernel_size == 5
    with pytest.raises(
        ConfigError, match=r"override 'model.kernel_size=4': model.kernel_size: expected an odd"
    ):
        load_model_config(nested, ["model.kernel_size=4"])


def test_cnn_width_explicit_or_matched():
    explicit = build_model({**TINY, "name": "cnn_resnet", "width": 7})
    assert explicit.width == 7
    matched = build_model({**TINY, "name": "cnn_resnet", "match_params_of": "gcnn_resnet", "hidden": 4})
    target = count_parameters(build_model({**TINY, "hidden": 4}))
    assert abs(count_parameters(matched) - target) <= 0.1 * target


def test_sim_build_model_is_lazy():
    model = sim.build_model(ROOT / "configs/ns2d/gcnn_p4m.yaml")
    assert isinstance(model, GCNNResNet) and "build_model" in sim.__all__
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys, sim; assert callable(sim.build_model); assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


# ------------------------------------------------------------------------------------------------
# Config errors: one line, naming the file (or <dict>), the key, what was expected and what was given
# ------------------------------------------------------------------------------------------------


def _error(source, overrides=()) -> str:
    with pytest.raises(ConfigError) as err:
        build_model(source, overrides)
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 8}, r"unknown key 'model.hidden_size' \(expected one of: activation, blocks, .*\)"),
        ({"kernel_size": 4}, r"model.kernel_size: expected an odd int >= 1, got 4"),
        ({"group": "D5"}, r"model.group: expected a group acting exactly on the grid: C1, .* P4M, got 'D5'"),
        ({"group": "Q4"}, r"model.group: expected a group acting exactly on the grid: .*, got 'Q4'"),
        ({"name": "fno"}, r"model.name: expected one of 'gcnn_resnet', 'gcnn_unet', .*, got 'fno' \(str\)"),
        ({"padding": "reflect"}, r"model.padding: expected one of 'circular', 'zeros', got 'reflect'"),
        ({"hidden": 0}, r"model.hidden: expected a positive int, got 0"),
        ({"in_fields": "4x regular"}, r"model: in_fields: expected physical fields .*, got '4x regular'"),
        (
            {"out_fields": "1x pseudoscaler"},
            r"model: out_fields: expected a field type .*got '1x pseudoscaler'",
        ),
        ({"in_fields": "0x scalar"}, r"in_fields: .*multiplicities must be >= 1, got '0x scalar'"),
        ({"width": 8}, r"model: width: only CNN baselines take it .*, got 8 for gcnn_resnet"),
        ({"match_params_of": "gcnn_unet"}, r"model: match_params_of: only CNN baselines take it"),
        (
            {"name": "cnn_resnet"},
            r"model: width: expected exactly one of width and match_params_of .*got neither",
        ),
        (
            {"name": "cnn_unet", "width": 8, "match_params_of": "gcnn_unet"},
            r"model: width: expected exactly one of width and match_params_of for cnn_unet, got both",
        ),
    ],
)
def test_bad_configs_are_one_line_errors_naming_file_and_key(tmp_path, change, message):
    path = _write(tmp_path / "bad.yaml", {"model": {**TINY, **change}, "train": {}})
    text = _error(path)
    assert text.startswith(f"{path}: "), text
    assert re.search(message, text), text


def test_missing_keys_and_files():
    assert _error({"name": "gcnn_resnet", "out_fields": "1x scalar"}) == (
        "<dict>: missing key 'in_fields' (expected a str for gcnn_resnet)"
    )
    assert _error({"model": {"in_fields": "1x scalar"}}).startswith("<dict>: missing key 'model.name'")
    assert _error({"model": None}).startswith("<dict>: model: expected a mapping for ModelConfig, got None")
    assert _error("no/such/model.yaml") == "no/such/model.yaml: no such file"
    assert _error({**TINY, "levels": 0}) == "<dict>: levels: expected a positive int, got 0"


def test_build_model_rejects_other_sources():
    with pytest.raises(TypeError, match="expected a YAML path, a mapping or a ModelConfig, got int"):
        build_model(3)
