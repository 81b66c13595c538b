"""The steerable ResNet: exact D4 equivariance of the shipped configs, small errors at other angles (the CNN
baseline's are large), the vector output's convention, build through the registry, a training smoke run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import sim
from sim.config import ConfigError, from_dict
from sim.groups.o2 import Irreps
from sim.models import CNNResNet, SteerableResNet, build_model, load_model_config
from sim.testing import assert_equivariant, equivariance_errors_vs_angle

ROOT = Path(__file__).resolve().parents[2]
VORTICITY, VELOCITY = (
    ROOT / "configs/ns2d/steerable_o2.yaml",
    ROOT / "configs/ns2d/steerable_o2_velocity.yaml",
)
TINY = dict(in_fields="5x pseudoscalar", hidden=2, blocks=1, kernel_size=5)


def _tiny(cfg: Path) -> dict:
    """The shipped config, shrunk (same fields, group and layers)."""
    model = yaml.safe_load(cfg.read_text())["model"]
    return {**model, "hidden": 2, "blocks": 1}


@pytest.mark.parametrize("cfg", [VORTICITY, VELOCITY], ids=["vorticity", "velocity"])
def test_shipped_configs_build_with_their_documented_sizes(cfg):
    model = sim.build_model(cfg)
    assert isinstance(model, SteerableResNet)
    counts = {VORTICITY: 109_136, VELOCITY: 113_648}  # quoted in the configs' comments
    assert sum(p.numel() for p in model.parameters()) == counts[cfg]
    if cfg == VORTICITY:  # 4 vorticity frames + the forcing -> vorticity
        assert str(model.in_type) == "5x pseudoscalar of D4" and model.in_channels == 5
        assert str(model.out_type) == "1x pseudoscalar of D4"
    else:  # 4 velocity frames + the (vorticity) forcing -> velocity
        assert str(model.in_type) == "4x vector + 1x pseudoscalar of D4" and model.in_channels == 9
        assert str(model.out_type) == "1x vector of D4"
    assert model.hidden_irreps == Irreps.parse("O2", "0+ + 0- + 1 + 2" + " + 0+ + 0- + 1 + 2" * 15)


@pytest.mark.parametrize("norm", ["none", "group", "batch"])
@pytest.mark.parametrize("cfg", [VORTICITY, VELOCITY], ids=["vorticity", "velocity"])
def test_exactly_d4_equivariant(cfg, norm):
    model = build_model({**_tiny(cfg), "norm": norm})
    assert_equivariant(model, size=12, batch=1)  # float64 1e-10 and float32 1e-5 (the kit's defaults)


def test_exactly_c4_equivariant_for_so2():
    model = SteerableResNet(out_fields="1x vector", group="SO2", **TINY)
    assert model.planar_group == sim.groups.cyclic(4) and str(model.in_type) == "5x pseudoscalar of C4"
    assert_equivariant(model, size=12, batch=1)


def test_vector_output_follows_the_conventions():
    # Mirror x -> -x (flip of the last axis): a pseudoscalar input changes sign, the velocity's u flips
    # sign and v does not; rotation by 90 degrees counter-clockwise: (u, v) -> (-v, u).
    torch.manual_seed(0)
    model = SteerableResNet(out_fields="1x vector", **TINY).double().eval()
    x = torch.randn(1, 5, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
        mirrored = model(-torch.flip(x, dims=(-1,)))
        rotated = model(torch.rot90(x, 1, dims=(-1, -2)))
    u, v = y[:, 0], y[:, 1]
    torch.testing.assert_close(mirrored, torch.stack([-u.flip(-1), v.flip(-1)], dim=1), rtol=0, atol=1e-10)
    turn = lambda f: torch.rot90(f, 1, dims=(-1, -2))  # noqa: E731
    torch.testing.assert_close(rotated, torch.stack([-turn(v), turn(u)], dim=1), rtol=0, atol=1e-10)


def test_small_error_at_45_degrees_unlike_a_cnn():
    torch.manual_seed(0)
    steerable = SteerableResNet(out_fields="1x pseudoscalar", **TINY)
    cnn = CNNResNet(in_fields="5x pseudoscalar", out_fields="1x pseudoscalar", width=6, blocks=1, group="D4")
    irreps_in, irreps_out = Irreps.parse("O2", "5x0-"), Irreps.parse("O2", "0-")
    kw = dict(angles=(45.0,), size=48, batch=1, smooth=4.0)  # measured: 0.018 (the CNN: ~0.8)
    ours = equivariance_errors_vs_angle(steerable, steerable.in_irreps, steerable.out_irreps, **kw)[45.0]
    base = equivariance_errors_vs_angle(cnn, irreps_in, irreps_out, **kw)[45.0]
    assert ours < 0.05 and base > 5 * ours, (ours, base)
    mirrored = equivariance_errors_vs_angle(steerable, irreps_in, irreps_out, reflect=True, **kw)[45.0]
    assert mirrored < 0.05


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"in_fields": "5x pseudovector"}, "in_fields: fields '5x pseudovector' of O2: unknown field"),
        ({"group": "D4"}, "group: expected O2 or SO2 for steerable_resnet, got 'D4'"),
        ({"norm": "instance"}, "norm: expected 'batch', 'group' or 'none' for steerable_resnet"),
        ({"width": 8}, "width: only CNN baselines take it"),
    ],
)
def test_bad_configs_are_one_line_errors(change, message):
    with pytest.raises(ConfigError) as err:
        load_model_config({**_tiny(VORTICITY), **change})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"unknown field 'vectr'") as err:
        SteerableResNet(in_fields="5x pseudoscalar", out_fields="1x vectr")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="'O2' or 'SO2'"):
        SteerableResNet(group="D4", **{**TINY, "out_fields": "0-"})  # type: ignore[arg-type]
    model = SteerableResNet(out_fields="1x0- + 1", **TINY)  # irreps strings work too
    assert model.out_channels == 3 and model.out_type.matrices().shape == (8, 3, 3)
    with pytest.raises(ValueError, match=r"expected input \[B, 5, H, W\]"):
        model(torch.randn(1, 4, 8, 8))


def test_trains_through_the_engine(tmp_path):
    from sim.data import NS2DDataConfig, generate_ns2d
    from sim.train import ExperimentConfig, train

    data = {
        "solver": {"resolution": 16, "viscosity": 1e-3, "dt": 0.05, "dtype": "float64"},
        "resolution": 16,
        "samples": 2,
        "batch_size": 2,
        "t_final": 0.6,
        "record_every": 0.1,
        "seed": 1,
        "device": "cpu",
    }
    path = tmp_path / "ns.nc"
    generate_ns2d(from_dict(NS2DDataConfig, data), path, progress=False)
    model = {**_tiny(VORTICITY), "in_fields": "3x pseudoscalar"}
    config = from_dict(
        ExperimentConfig,
        {
            "model": model,
            "data": {"path": str(path), "history": 2, "train_samples": [0, 1], "val_samples": [1, 2]},
            "train": {
                "steps": 2,
                "batch_size": 2,
                "log_every": 1,
                "val_every": 2,
                "val_batches": 1,
                "checkpoint_every": 2,
                "device": "cpu",
            },
        },
    )
    result = train(config, tmp_path / "run", progress=False)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.loss))
