"""The Stepper: field-type-aware statistics, residual/direct prediction, exact mean conservation,
equivariance preserved around an equivariant model, streaming rollouts."""

from __future__ import annotations

import pytest
import torch

import sim
from sim.groups import FieldType, dihedral
from sim.testing import assert_equivariant
from sim.train import FieldStats, Stepper, field_stats

D4 = dihedral(4)


def test_field_stats_respect_field_types():
    t = FieldType.parse(D4, "scalar + pseudoscalar + vector")
    x = torch.randn(1000, 4, dtype=torch.float64) * torch.tensor([2.0, 3.0, 1.0, 5.0]) + torch.tensor(
        [1.0, 4, 2, 3]
    )
    stats = field_stats(x.sum(0), (x**2).sum(0), 1000, t)
    assert stats.mean[0] == pytest.approx(1.0, abs=0.2)  # a scalar keeps its mean
    assert torch.all(stats.mean[1:] == 0)  # pseudoscalars and vectors have no invariant mean under D4
    assert stats.std[2] == stats.std[3]  # one scale for both components of the vector
    assert stats.std[1] == pytest.approx(float(((x[:, 1]) ** 2).mean().sqrt()), rel=1e-12)
    const = field_stats(torch.zeros(4), torch.zeros(4), 10, t)
    assert torch.all(const.std == 1)


def _stepper(residual=True, conserve_mean=False, history=4):
    model = sim.build_model("configs/ns2d/gcnn_p4m.yaml", [f"model.in_fields={history + 1}x pseudoscalar"])
    one = FieldStats(torch.zeros(1), torch.full((1,), 0.7))
    return Stepper(
        model,
        history=history,
        state=one,
        delta=FieldStats(torch.zeros(1), torch.full((1,), 0.05)),
        forcing=FieldStats(torch.zeros(1), torch.full((1,), 0.1)),
        residual=residual,
        conserve_mean=conserve_mean,
    )


@pytest.mark.parametrize("residual", [True, False])
def test_stepper_around_an_equivariant_model_stays_equivariant(residual):
    stepper = _stepper(residual=residual, conserve_mean=True).double()
    types_in = FieldType.parse(D4, "5x pseudoscalar")

    def step(x):  # x: [B, 5, H, W] = 4 frames + forcing
        return stepper(x[:, :4, None], x[:, 4:])[:, 0:1]

    assert_equivariant(step, types_in, FieldType.parse(D4, "pseudoscalar"), size=8, dtypes=(torch.float64,))


def test_mean_is_conserved_exactly_and_rollout_streams():
    stepper = _stepper(conserve_mean=True).double().eval()
    history = torch.randn(2, 4, 1, 8, 8, dtype=torch.float64)
    forcing = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    states = list(stepper.rollout(history, forcing, 5))
    assert len(states) == 5 and states[0].shape == (2, 1, 8, 8)
    for s in states:
        assert torch.allclose(s.mean(dim=(-1, -2)), history[:, -1].mean(dim=(-1, -2)), atol=1e-12)
    # the rollout is the step applied to its own output
    window = torch.cat([history[:, 1:], states[0][:, None]], dim=1)
    assert torch.allclose(stepper(window, forcing), states[1])


def test_statistics_travel_in_the_state_dict_and_shapes_are_checked():
    stepper = _stepper()
    keys = set(stepper.state_dict())
    assert {"state_mean", "state_std", "delta_mean", "delta_std", "forcing_mean", "forcing_std"} <= keys
    with pytest.raises(ValueError, match=r"history must be \[B, 4, 1, \*space\], got \[2, 3, 1, 8, 8\]"):
        stepper(torch.zeros(2, 3, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="forcing must be"):
        stepper(torch.zeros(2, 4, 1, 8, 8), None)
    with pytest.raises(ValueError, match=r"maps 5 -> 1 channels; expected 9 -> 1 \(4 frames x 1 state"):
        Stepper(
            sim.build_model("configs/ns2d/gcnn_p4m.yaml"),
            history=4,
            state=FieldStats(torch.zeros(1), torch.ones(1)),
            delta=FieldStats(torch.zeros(1), torch.ones(1)),
            forcing=FieldStats(torch.zeros(5), torch.ones(5)),
        )


def test_a_divergence_free_velocity_stepper_predicts_incompressible_states():
    from sim.config import ConfigError, from_dict
    from sim.solvers import NavierStokes2D
    from sim.train import ExperimentConfig

    class Noise(torch.nn.Module):  # any prediction: a fixed random field added to the last frame
        def forward(self, x):
            return x[:, -3:-1] + torch.randn(
                x.shape[0], 2, *x.shape[2:], generator=torch.Generator().manual_seed(0), dtype=x.dtype
            )

    stats = FieldStats(torch.zeros(2), torch.ones(2))
    forcing = FieldStats(torch.zeros(1), torch.ones(1))
    kw = dict(history=2, state=stats, delta=stats, forcing=forcing, conserve_mean=True)
    stepper = Stepper(Noise(), divergence_free=True, **kw).double()
    history, f = (
        torch.randn(1, 2, 2, 16, 16, dtype=torch.float64),
        torch.randn(1, 1, 16, 16, dtype=torch.float64),
    )
    nxt = stepper(history, f)
    solver = NavierStokes2D(16, 1e-3, 1e-2)
    u_hat, v_hat = torch.fft.rfft2(nxt).unbind(1)
    div = torch.fft.irfft2(solver._ops[2] * u_hat + solver._ops[3] * v_hat, s=(16, 16))
    assert div.abs().max() < 1e-10  # the unprojected prediction is far from it
    free = Stepper(Noise(), **kw).double()(history, f)
    torch.testing.assert_close(solver.vorticity(nxt), solver.vorticity(free), atol=1e-10, rtol=0)  # same curl
    with pytest.raises(ValueError, match="2 state channels"):
        Stepper(
            Noise(),
            divergence_free=True,
            history=2,
            state=FieldStats(torch.zeros(1), torch.ones(1)),
            delta=FieldStats(torch.zeros(1), torch.ones(1)),
            forcing=forcing,
        )
    with pytest.raises(ConfigError, match="data.state: velocity"):
        model = {
            "name": "cnn_resnet",
            "in_fields": "5x pseudoscalar",
            "out_fields": "1x pseudoscalar",
            "width": 4,
        }
        from_dict(ExperimentConfig, {"model": model, "train": {"divergence_free": True}})
