"""Mesh models through the training engine, rollouts and evaluation (a synthetic cylinder-flow file)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from sim.config import ConfigError, from_dict
from sim.data.cylinder import CylinderWindows, collate_graphs
from sim.discretize import NodeType
from sim.evaluate.mesh_rollout import planar_transform, rollout_mesh_to_netcdf
from sim.train import ExperimentConfig, load_stepper, train
from sim.train.checkpoint import CheckpointError
from sim.train.engine import _loss, _split
from sim.train.mesh import build_mesh_stepper
from sim.train.stepper import MeshGraph, MeshStepper

TINY = {
    "meshgraphnet": {"latent": 8, "blocks": 1},
    "equivariant_meshgraphnet": {"latent": 8, "blocks": 1, "vectors": 2},
    "egnn": {"latent": 8, "blocks": 1},
}


def _config(path, name: str, *, history: int = 1, **train) -> ExperimentConfig:
    return from_dict(
        ExperimentConfig,
        {
            "model": {"name": name, "in_fields": f"{history}x vector", "out_fields": "1x vector",
                      **TINY[name]},
            "data": {"path": str(path), "history": history, "train_samples": [0, 2], "val_samples": [2, 3]},
            "train": {"steps": 2, "batch_size": 2, "val_every": 2, "checkpoint_every": 2, "device": "cpu",
                      "log_every": 1, **train},
        },
    )  # fmt: skip


def _batch(path, horizon: int = 1):
    windows = CylinderWindows(path, history=1, horizon=horizon, samples=[0, 1])
    return collate_graphs([windows[0], windows[len(windows) - 1]])


def test_mesh_stepper_holds_boundary_conditions_and_masks_the_loss(cylinder_file):
    batch = _batch(cylinder_file, horizon=2)
    history, graph, target = _split(batch, 1, 2, "cpu")
    assert history.shape[1:] == (1, 2) and target.shape[1:] == (2, 2) and isinstance(graph, MeshGraph)
    stepper = build_mesh_stepper(_config(cylinder_file, "equivariant_meshgraphnet"), None)
    with torch.no_grad():
        nxt = stepper(history, graph)
    held = torch.isin(graph.node_type, torch.tensor([NodeType.INFLOW, NodeType.WALL_BOUNDARY]))
    assert held.any() and torch.equal(nxt[held], history[held, -1])
    assert not torch.equal(nxt[~held], history[~held, -1])
    assert torch.equal(stepper.loss_mask(graph), ~held)
    assert torch.equal(stepper.noise_mask(graph), graph.node_type == NodeType.NORMAL)
    # the loss counts the predicted nodes only: corrupting the target on held nodes changes nothing
    spoiled = target.clone()
    spoiled[held] += 100.0
    a = _loss(stepper, stepper, history, graph, target, 2, False)
    b = _loss(stepper, stepper, history, graph, spoiled, 2, False)
    assert float(a.detach()) == pytest.approx(float(b.detach()))
    with pytest.raises(ValueError, match=r"history must be \[N, 1, 2\]"):
        stepper(history[:, :, :1], graph)


@pytest.mark.parametrize("name", ["equivariant_meshgraphnet", "egnn"])
def test_equivariant_steppers_commute_with_rotations_mirrors_and_translations(cylinder_file, name):
    stepper = build_mesh_stepper(_config(cylinder_file, name), {"velocity_std": 1.3, "delta_std": 0.05})
    stepper = stepper.double().eval()
    history, graph, _ = _split(_batch(cylinder_file), 1, 2, "cpu")
    history = history.double()
    graph = graph._replace(pos=graph.pos.double())
    g = planar_transform(37.0, mirror=True)
    moved = graph._replace(pos=graph.pos @ g.T + torch.tensor([0.3, -2.0], dtype=torch.float64))
    with torch.no_grad():
        out = stepper(history, graph)
        out_g = stepper(history @ g.T, moved)
    torch.testing.assert_close(out_g, out @ g.T, rtol=0, atol=1e-10)


def test_the_baseline_is_not_rotation_equivariant(cylinder_file):
    stepper = build_mesh_stepper(_config(cylinder_file, "meshgraphnet"), None).double().eval()
    history, graph, _ = _split(_batch(cylinder_file), 1, 2, "cpu")
    history, graph = history.double(), graph._replace(pos=graph.pos.double())
    g = planar_transform(90.0)
    with torch.no_grad():
        out = stepper(history, graph)
        out_g = stepper(history @ g.T, graph._replace(pos=graph.pos @ g.T))
    assert float((out_g - out @ g.T).abs().max()) > 1e-4


def test_train_resume_rollout_on_a_rotated_domain(cylinder_file, tmp_path):
    config = _config(
        cylinder_file, "equivariant_meshgraphnet", steps=4, unroll=2, unroll_every=2, noise_std=0.02
    )
    whole = train(config, tmp_path / "whole", progress=False)
    half = train(config, tmp_path / "half", progress=False, stop_after=2)
    assert half.step == 2
    resumed = train(config, tmp_path / "half", progress=False, resume=True)
    assert resumed.step == 4 and resumed.loss == pytest.approx(whole.loss, rel=1e-5)
    stepper, stored, ckpt = load_stepper(whole.checkpoint)
    assert isinstance(stepper, MeshStepper) and stored == config
    assert ckpt["data"]["kind"] == "cylinder" and ckpt["data"]["step_time"] == pytest.approx(0.01)
    assert float(stepper.length_scale) != 1.0  # the training data's edge scale was stored
    with pytest.raises(ValueError, match=r"attrs: \['kind'\] are written by rollout_mesh_to_netcdf itself"):
        rollout_mesh_to_netcdf(stepper, cylinder_file, tmp_path / "x.nc", steps=1, attrs={"kind": "mine"})
    paths = []
    for angle, mirror in ((0.0, False), (123.0, True)):
        paths.append(tmp_path / f"r{angle:g}.nc")
        rollout_mesh_to_netcdf(
            stepper, cylinder_file, paths[-1], steps=3, samples=[2, 0], rotation_deg=angle, mirror=mirror,
            batch_size=1, progress=False,
        )  # fmt: skip
    with xr.open_dataset(paths[0]) as a, xr.open_dataset(paths[1]) as b:
        assert a["velocity"].shape[:2] == (2, 3) and (a["diverged_at"].values == -1).all()
        np.testing.assert_allclose(b["velocity"].values, a["velocity"].values, rtol=0, atol=2e-5)
    with xr.open_dataset(cylinder_file) as data, xr.open_dataset(paths[0]) as a:
        for row, sample in enumerate((2, 0)):  # real nodes finite, padding NaN
            n = int(data["num_nodes"][sample])
            assert np.isfinite(a["velocity"][row, :, :n].values).all()
            assert np.isnan(a["velocity"][row, :, n:].values).all()


def test_mesh_config_errors(cylinder_file, tmp_path):
    with pytest.raises(ConfigError, match="in_fields: expected 'T x vector'"):
        from_dict(
            ExperimentConfig, {"model": {"name": "egnn", "in_fields": "1x scalar", "out_fields": "1x vector"}}
        )
    config = _config(cylinder_file, "egnn")
    bad = from_dict(
        ExperimentConfig, {**_as_dict(config), "data": {**_as_dict(config)["data"], "history": 2}}
    )
    with pytest.raises(ConfigError, match=r"model.in_fields: expected 2x vector \(data.history"):
        train(bad, tmp_path / "bad", progress=False)


def _as_dict(config) -> dict:
    import dataclasses

    return dataclasses.asdict(config)


def test_masked_loss_is_the_mean_over_the_predicted_nodes(cylinder_file):
    history, graph, target = _split(_batch(cylinder_file), 1, 2, "cpu")
    stepper = build_mesh_stepper(_config(cylinder_file, "meshgraphnet"), None)
    with torch.no_grad():
        loss = _loss(stepper, stepper, history, graph, target, 1, False)
        err = ((stepper(history, graph) - target[:, 0]) / stepper.state_std) ** 2
    torch.testing.assert_close(loss, err[stepper.loss_mask(graph)].mean())


def test_training_memory_of_a_mesh_model_is_counted_on_meta(cylinder_file):
    from sim.train.engine import training_memory

    config = _config(cylinder_file, "equivariant_meshgraphnet", unroll=2)
    one, two = training_memory(config, unroll=1), training_memory(config)
    assert two["unroll"] == 2 and one["parameters"] == two["parameters"] > 0
    # parameters, their gradients and AdamW's two moments at least; a longer unroll keeps more activations
    assert 4 * one["parameter_bytes"] < one["peak"] < two["peak"]


def test_init_from_starts_a_run_from_another_runs_weights(cylinder_file, tmp_path):
    first = train(_config(cylinder_file, "equivariant_meshgraphnet"), tmp_path / "a", progress=False)
    trained, _, _ = load_stepper(first.checkpoint)
    # fine-tune with a longer unroll; a vanishing learning rate leaves the loaded weights as they were
    tune = _config(cylinder_file, "equivariant_meshgraphnet", init_from=str(first.checkpoint), unroll=2,
                   lr=1e-12, steps=1, val_every=1)  # fmt: skip
    tuned, _, _ = load_stepper(train(tune, tmp_path / "b", progress=False).checkpoint)
    fresh, _, _ = load_stepper(
        train(_config(cylinder_file, "equivariant_meshgraphnet", lr=1e-12, steps=1), tmp_path / "c",
              progress=False).checkpoint
    )  # fmt: skip
    weights = {name: (a, tuned.state_dict()[name], fresh.state_dict()[name])
               for name, a in trained.state_dict().items()}  # fmt: skip
    for name, (a, b, _) in weights.items():
        torch.testing.assert_close(b, a, rtol=0, atol=1e-8, msg=name)
    far = [name for name, (a, _, c) in weights.items() if a.is_floating_point() and not torch.allclose(a, c)]
    assert far  # a run without init_from starts elsewhere

    other = _config(cylinder_file, "egnn", init_from=str(first.checkpoint))  # same layout, other model
    with pytest.raises(CheckpointError, match=r"train.init_from: .*last.pt holds weights of another model"):
        train(other, tmp_path / "d", progress=False)
    longer = _config(cylinder_file, "equivariant_meshgraphnet", history=2, init_from=str(first.checkpoint))
    with pytest.raises(
        CheckpointError, match=r"train.init_from: .*last.pt was made for layout .*'history': 1"
    ):
        train(longer, tmp_path / "f", progress=False)
    missing = _config(cylinder_file, "egnn", init_from=str(tmp_path / "none.pt"))
    with pytest.raises(CheckpointError, match=r"none.pt: no such checkpoint"):
        train(missing, tmp_path / "e", progress=False)
