"""G-CNN ResNet and U-Net: exact equivariance (eval and train mode), shapes, gradients, input checks."""

from __future__ import annotations

import pytest
import torch

from sim.groups import group_from_name
from sim.models import GCNNResNet, GCNNUNet
from sim.testing import assert_equivariant, equivariance_errors

# Small enough for 2 CPU cores: 2 regular fields, one block, 3x3 kernels.
TINY = dict(hidden=2, blocks=1, kernel_size=3)
FIELDS = dict(in_fields="2x pseudoscalar + 1x vector + 1x scalar", out_fields="1x vector + 1x pseudoscalar")


def _model(cls, group: str, **kwargs):
    return cls(group, **{**FIELDS, **TINY, **kwargs})


@pytest.mark.parametrize("group", ["C4", "D4", "C2", "D1"])
@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_resnet_is_equivariant(group, padding):
    model = _model(GCNNResNet, group, padding=padding)
    reports = assert_equivariant(model)  # 16x16, float64 and float32, every element
    assert reports[torch.float64].worst < 1e-12


@pytest.mark.parametrize("group", ["P4", "P4M"])
def test_resnet_is_equivariant_on_non_square_grids(group):
    # Quarter turns swap H and W; circular padding keeps every element exact.
    assert_equivariant(_model(GCNNResNet, group, padding="circular"), size=(16, 8))


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_unet_is_equivariant(group, padding):
    model = _model(GCNNUNet, group, levels=2, padding=padding)
    assert_equivariant(model, size=16)  # divisible by 2**levels = 4
    assert_equivariant(model, size=(16, 8), dtypes=(torch.float64,))


@pytest.mark.parametrize("cls", [GCNNResNet, GCNNUNet])
@pytest.mark.parametrize("norm", ["group", "batch", "instance", "none"])
@pytest.mark.parametrize("activation", ["gelu", "relu", "silu"])
def test_norms_and_activations_keep_equivariance_in_train_mode(cls, norm, activation):
    model = _model(cls, "D4", norm=norm, norm_groups=2, activation=activation)
    for train in (False, True):  # BatchNorm uses batch statistics in train mode
        report = equivariance_errors(model, train=train, dtype=torch.float64, batch=3)
        assert report.worst < 1e-10, (train, report.errors)


@pytest.mark.parametrize("cls", [GCNNResNet, GCNNUNet])
def test_shapes_and_attributes(cls):
    model = _model(cls, "P4M", hidden=3)
    assert model.group == group_from_name("D4")
    assert (model.in_channels, model.out_channels) == (5, 3)
    assert str(model.in_type) == "2x pseudoscalar + 1x vector + 1x scalar of D4"
    x = torch.randn(2, 5, 16, 24)
    assert model(x).shape == (2, 3, 16, 24)


@pytest.mark.parametrize("cls", [GCNNResNet, GCNNUNet])
def test_gradients_reach_every_parameter(cls):
    torch.manual_seed(0)
    model = _model(cls, "D4", in_fields="3x pseudoscalar", out_fields="1x scalar")
    loss = model(torch.randn(2, 3, 16, 16)).square().mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_unet_widths_double_per_level():
    model = _model(GCNNUNet, "D4", hidden=2, levels=3)
    widths = [stage[0].branch[0][2].out_type.num_fields for stage in model.trunk.encoder]  # GroupConv2d
    assert widths == [2, 4, 8, 16]


def test_blocks_zero_is_lift_then_projection():
    model = _model(GCNNResNet, "D4", blocks=0)
    assert len(model.trunk.blocks) == 0
    assert_equivariant(model, dtypes=(torch.float64,))


# ------------------------------------------------------------------------------------------------
# Bad input: one-line errors naming what was expected and what was given
# ------------------------------------------------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("cls", [GCNNResNet, GCNNUNet])
def test_forward_rejects_wrong_channel_count(cls):
    model = _model(cls, "D4", in_fields="5x pseudoscalar")
    with pytest.raises(ValueError) as err:
        model(torch.randn(2, 4, 16, 16))
    text = _one_line(err)
    assert f"{cls.__name__}: expected input [B, 5, H, W]" in text and "got [2, 4, 16, 16]" in text
    with pytest.raises(ValueError, match=r"expected input \[B, 5, H, W\].*got \[5, 16, 16\]"):
        model(torch.randn(5, 16, 16))


def test_unet_rejects_grids_not_divisible_by_two_to_the_levels():
    model = _model(GCNNUNet, "D4", levels=2, in_fields="1x scalar")
    with pytest.raises(ValueError) as err:
        model(torch.randn(1, 1, 18, 16))
    assert _one_line(err) == "GCNNUNet: expected H and W divisible by 2**levels = 4 (levels=2), got 18x16"
    model(torch.randn(1, 1, 20, 16))  # fine


def test_unet_rejects_grids_too_small_for_circular_padding():
    model = _model(GCNNUNet, "D4", levels=2, kernel_size=5, in_fields="1x scalar")
    with pytest.raises(ValueError, match=r"circular padding 2 .* needs H and W >= 8, got 4x8"):
        model(torch.randn(1, 1, 4, 8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(in_fields="1x regular"), r"in_fields must be physical fields .* got '1x regular'"),
        (dict(out_fields="2x scalar + 1x regular"), r"out_fields must be physical fields"),
        (dict(in_fields="2x pseudoscaler"), r"in_fields: .*pseudoscaler"),
        (dict(in_fields="0x scalar"), r"in_fields: field type '0x scalar': multiplicities must be >= 1"),
        (dict(kernel_size=4), r"kernel_size must be an odd int >= 1 \(a centre pixel\), got 4"),
        (dict(padding="reflect"), r"padding must be one of 'circular', 'zeros', got 'reflect'"),
        (dict(norm="layer"), r"norm must be one of 'group', 'batch', 'instance', 'none', got 'layer'"),
        (dict(activation="tanh"), r"activation must be one of 'gelu', 'relu', 'silu', got 'tanh'"),
        (dict(hidden=0), r"hidden must be an int >= 1, got 0"),
        (dict(blocks=-1), r"blocks must be an int >= 0, got -1"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        _model(GCNNResNet, "D4", **kwargs)
    assert str(err.value).startswith("GCNNResNet: ")
    _one_line(err)


def test_constructor_rejects_unknown_and_approximate_groups():
    with pytest.raises(ValueError, match=r"GCNNResNet: unknown planar group 'Q4'"):
        _model(GCNNResNet, "Q4")
    with pytest.raises(
        ValueError,
        match=r"^GCNNUNet: expected a group acting exactly on the grid \(C_N or D_N .*\), got C8$",
    ):
        _model(GCNNUNet, "C8")
    with pytest.raises(ValueError, match=r"levels must be an int >= 1, got 0"):
        _model(GCNNUNet, "D4", levels=0)
