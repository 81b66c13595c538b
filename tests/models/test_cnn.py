"""Plain CNN baselines: same interface as the G-CNNs, not equivariant, parameter matching."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sim.models import CNNResNet, CNNUNet, GCNNResNet, GCNNUNet, count_parameters, match_width
from sim.testing import assert_equivariant, equivariance_errors

FIELDS = dict(in_fields="3x pseudoscalar", out_fields="1x pseudoscalar")


@pytest.mark.parametrize("cls", [CNNResNet, CNNUNet])
@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_cnn_baselines_fail_the_equivariance_test(cls, padding):
    torch.manual_seed(0)
    model = cls(**FIELDS, width=4, blocks=1, kernel_size=3, padding=padding)
    assert model.in_type.group.name == "D4"  # declared, so the kit can test it
    report = equivariance_errors(model, dtype=torch.float64)
    assert report.worst > 1e-2, report.errors
    with pytest.raises(AssertionError, match="not equivariant under D4"):
        assert_equivariant(model, dtypes=(torch.float64,))


@pytest.mark.parametrize("cls", [CNNResNet, CNNUNet])
@pytest.mark.parametrize("norm", ["group", "batch", "instance", "none"])
def test_shapes_and_attributes(cls, norm):
    model = cls(in_fields="2x scalar + 1x vector", out_fields="1x vector", width=6, norm=norm, group="C4")
    assert (model.in_channels, model.out_channels) == (4, 2)
    assert model.in_type.group.name == "C4" and model.out_type.dim == 2
    assert model(torch.randn(2, 4, 16, 12)).shape == (2, 2, 16, 12)


@pytest.mark.parametrize("cls", [CNNResNet, CNNUNet])
def test_gradients_reach_every_parameter(cls):
    torch.manual_seed(0)
    model = cls(**FIELDS, width=4, blocks=1, kernel_size=3)
    model(torch.randn(2, 3, 16, 16)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


@pytest.mark.parametrize(("cnn_cls", "gcnn_cls"), [(CNNResNet, GCNNResNet), (CNNUNet, GCNNUNet)])
def test_same_blocks_as_the_gcnn(cnn_cls, gcnn_cls):
    # Module for module the same network; only the convolutions and norms differ.
    same = {"Conv2d": "conv", "GroupConv2d": "conv", "GroupNorm": "norm", "RegularNorm": "norm"}

    def layout(model):
        # RegularNorm wraps its GroupNorm as ".norm"; the CNN uses a GroupNorm directly.
        return [
            (name, same.get(type(m).__name__, type(m).__name__))
            for name, m in model.named_modules()
            if name and not name.endswith(".norm")
        ]

    assert layout(cnn_cls(**FIELDS, width=4)) == layout(gcnn_cls("D4", **FIELDS, hidden=4))


@pytest.mark.parametrize("cls", [CNNResNet, CNNUNet])
def test_input_checks(cls):
    model = cls(**FIELDS, width=4)
    with pytest.raises(
        ValueError, match=rf"^{cls.__name__}: expected input \[B, 3, H, W\] .*got \[1, 2, 16, 16\]$"
    ):
        model(torch.randn(1, 2, 16, 16))
    with pytest.raises(ValueError, match=r"in_fields must be physical fields"):
        cls(in_fields="4x regular", out_fields="1x scalar", width=4)
    with pytest.raises(ValueError, match=r"kernel_size must be an odd int >= 1 \(a centre pixel\), got 2"):
        cls(**FIELDS, width=4, kernel_size=2)
    with pytest.raises(ValueError, match=r"width must be an int >= 1, got 0"):
        cls(**FIELDS, width=0)


def test_cnn_unet_rejects_grids_not_divisible_by_two_to_the_levels():
    model = CNNUNet(**FIELDS, width=4, levels=3)
    with pytest.raises(
        ValueError, match=r"^CNNUNet: expected H and W divisible by 2\*\*levels = 8 \(levels=3\), got 16x12$"
    ):
        model(torch.randn(1, 3, 16, 12))


# ------------------------------------------------------------------------------------------------
# Parameter matching
# ------------------------------------------------------------------------------------------------


def test_match_width_picks_the_closest_count():
    build = lambda w: nn.Linear(w, w)  # noqa: E731  # w^2 + w parameters: 110 at 10, 132 at 11
    assert match_width(build, 110) == 10
    assert match_width(build, 120) == 10
    assert match_width(build, 122) == 11
    assert match_width(build, 1) == 1
    with pytest.raises(
        ValueError, match=r"expected a target reachable with width <= 64 \(4160 parameters\), got 5000"
    ):
        match_width(build, 5000, max_width=64)


@pytest.mark.parametrize(("cnn_cls", "gcnn_cls"), [(CNNResNet, GCNNResNet), (CNNUNet, GCNNUNet)])
@pytest.mark.parametrize("group", ["C4", "D4"])
def test_matched_cnn_has_about_the_gcnn_parameter_count(cnn_cls, gcnn_cls, group):
    kwargs = dict(**FIELDS, blocks=2, kernel_size=5)
    target = count_parameters(gcnn_cls(group, hidden=6, **kwargs))
    width = match_width(lambda w: cnn_cls(width=w, group=group, **kwargs), target)
    got = count_parameters(cnn_cls(width=width, group=group, **kwargs))
    assert abs(got - target) <= 0.1 * target, (width, got, target)
    # A regular->regular group conv has |G| times the weights of a plain conv with as many fields.
    order = 8 if group == "D4" else 4
    assert abs(width - 6 * order**0.5) <= 1.5
