"""The training engine: exact resume, reproducibility, switches, data parallel on CPU, bad input."""

from __future__ import annotations

import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp

from sim.config import ConfigError, from_dict
from sim.data import NS2DDataConfig, generate_ns2d
from sim.data.ns2d import DataFileError
from sim.io import OutputError
from sim.train import CheckpointError, ExperimentConfig, load_stepper, train
from sim.train.engine import batch_indices

DATA = {
    "solver": {"resolution": 16, "viscosity": 1e-3, "dt": 0.02, "dtype": "float64"},
    "resolution": 16,
    "samples": 6,
    "batch_size": 6,
    "t_final": 1.1,
    "record_every": 0.1,
    "seed": 1,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("engine") / "ns.nc"
    generate_ns2d(from_dict(NS2DDataConfig, DATA), path, progress=False)
    return str(path)


def _config(data_path: str, **train) -> ExperimentConfig:
    return from_dict(
        ExperimentConfig,
        {
            "model": {
                "name": "gcnn_resnet",
                "group": "P4M",
                "in_fields": "3x pseudoscalar",
                "out_fields": "1x pseudoscalar",
                "hidden": 2,
                "blocks": 1,
                "kernel_size": 3,
            },
            "data": {"path": data_path, "history": 2, "train_samples": [0, 4], "val_samples": [4, 6]},
            "train": {
                "steps": 8,
                "batch_size": 4,
                "lr": 3e-3,
                "log_every": 2,
                "val_every": 4,
                "val_batches": 1,
                "checkpoint_every": 4,
                "device": "cpu",
                **train,
            },
        },
    )


def _weights(run) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["stepper"]


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(data_path, tmp_path):
    config = _config(data_path, unroll=3, unroll_every=3, pushforward=True, noise_std=0.05)
    full = train(config, tmp_path / "full", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=3)  # "killed" after a checkpoint at 3
    resumed = train(config, tmp_path / "split", resume=True, progress=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.loss == full.loss and resumed.step == full.step == 8
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss,unroll") and [r.split(",")[0] for r in log[1:]] == [
        "2",
        "3",
        "4",
        "6",
        "8",
    ]
    for name in ("config.yaml", "loss.png", "checkpoints/last.pt"):
        assert (tmp_path / "split" / name).is_file()


def test_log_is_written_as_training_goes_and_a_resume_drops_the_rows_after_its_checkpoint(
    data_path, tmp_path, monkeypatch
):
    import sim.train.engine as engine

    config = _config(data_path)  # log every 2 steps, checkpoint every 4, 8 steps
    real_append = engine._append_log

    def killed_after_logging_step_6(out_dir, rows):
        real_append(out_dir, rows)
        if rows[-1][0] == 6:  # the log has rows 2, 4, 6 (on disk now), the last checkpoint is step 4
            log = (tmp_path / "run" / "log.csv").read_text().splitlines()
            assert [r.split(",")[0] for r in log[1:]] == ["2", "4", "6"]
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_append_log", killed_after_logging_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", progress=False)
    monkeypatch.setattr(engine, "_append_log", real_append)
    train(config, tmp_path / "run", resume=True, progress=False)
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss,unroll") and [r.split(",")[0] for r in log[1:]] == [
        "2",
        "4",
        "6",
        "8",
    ]
    full = train(config, tmp_path / "full", progress=False)
    assert log[1:] != [] and float(log[-1].split(",")[1]) == full.loss  # the same run, resumed


def test_train_or_reuse_keeps_finished_runs_and_resumes_unfinished_ones(data_path, tmp_path):
    from sim.train.engine import finished_run, train_or_reuse

    config = _config(data_path)
    train(config, tmp_path / "full", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=3)  # a study stopped part way
    assert finished_run(tmp_path / "split", config) == (None, pytest.approx(float("nan"), nan_ok=True))
    first = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["train_seconds"]
    ckpt, seconds, reused = train_or_reuse(config, tmp_path / "split", reuse=True, progress=False)
    assert not reused and seconds > first > 0  # the time of both parts
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)  # went on where it stopped, as resume does
    assert train_or_reuse(config, tmp_path / "split", reuse=True, progress=False) == (ckpt, seconds, True)
    other = _config(data_path, lr=5e-4)  # another config: trained afresh in the same folder
    _, _, reused = train_or_reuse(other, tmp_path / "split", reuse=True, progress=False)
    assert not reused and finished_run(tmp_path / "split", other)[0] is not None


def test_seeded_runs_reproduce_and_seeds_matter(data_path, tmp_path):
    config = _config(data_path, steps=3)
    a = train(config, tmp_path / "a", progress=False)
    b = train(config, tmp_path / "b", progress=False)
    c = train(_config(data_path, steps=3, seed=1), tmp_path / "c", progress=False)
    assert a.loss == b.loss != c.loss


def test_unroll_curriculum_and_batch_order():
    t = _config("x.nc", unroll=3, unroll_every=5).train
    assert [t.unroll_at(s) for s in (0, 4, 5, 9, 10, 100)] == [1, 1, 2, 2, 3, 3]
    assert _config("x.nc", unroll=3).train.unroll_at(0) == 3
    first = batch_indices(0, batch=4, n=10, seed=0) + batch_indices(1, batch=4, n=10, seed=0)
    assert len(set(first[:8])) == 8  # one epoch is a permutation
    assert batch_indices(5, batch=4, n=10, seed=0) == batch_indices(5, batch=4, n=10, seed=0)
    halves = batch_indices(3, batch=4, n=10, seed=0, rank=0, world=2) + batch_indices(
        3, batch=4, n=10, seed=0, rank=1, world=2
    )
    assert halves == batch_indices(3, batch=4, n=10, seed=0)  # ranks split the global batch


@pytest.mark.parametrize(
    "switches",
    [
        {"residual": False},
        {"conserve_mean": True},
        {"unroll": 2},
        {"schedule": "constant", "warmup_steps": 2, "grad_clip": None},
    ],
)
def test_switches_train_and_load(data_path, tmp_path, switches):
    result = train(_config(data_path, steps=2, **switches), tmp_path / "run", progress=False)
    assert result.loss == result.loss  # finite
    stepper, config, ckpt = load_stepper(result.checkpoint)
    assert ckpt["step"] == 2 and config.train.residual == switches.get("residual", True)
    assert stepper.residual == config.train.residual and stepper.conserve_mean == config.train.conserve_mean
    assert float(stepper.state_std) > 0


def _ddp_worker(rank: int, world: int, port: int, config: ExperimentConfig, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    train(config, out, progress=False)
    torch.distributed.destroy_process_group()


@pytest.mark.skipif(sys.platform != "linux", reason="gloo test set-up uses fork-free spawn on Linux")
def test_two_process_gloo_matches_one_process(data_path, tmp_path):
    config = _config(data_path, steps=4, val_every=100)
    single = train(config, tmp_path / "one", progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, config, str(tmp_path / "two")), nprocs=2, join=True)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)
    last = (tmp_path / "two" / "log.csv").read_text().splitlines()[-1].split(",")
    assert float(last[1]) == pytest.approx(single.loss, rel=1e-4)


def test_bad_input(data_path, tmp_path):
    config = _config(data_path, steps=2)
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(OutputError, match="already exists and is not empty .*--overwrite or --resume"):
        train(config, tmp_path / "run", progress=False)
    with pytest.raises(OutputError, match="nothing to resume"):
        train(config, tmp_path / "none", resume=True, progress=False)
    other = from_dict(
        ExperimentConfig,
        {
            **_as_dict(config),
            "data": {**_as_dict(config)["data"], "history": 1},
            "model": {**_as_dict(config)["model"], "in_fields": "2x pseudoscalar"},
        },
    )
    with pytest.raises(CheckpointError, match="made for layout"):
        train(other, tmp_path / "run", resume=True, progress=False)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_stepper(ckpt)
    missing = from_dict(
        ExperimentConfig,
        {**_as_dict(config), "data": {**_as_dict(config)["data"], "path": str(tmp_path / "no.nc")}},
    )
    with pytest.raises(DataFileError, match="no such data file"):
        train(missing, tmp_path / "fresh", progress=False)
    model = _as_dict(config)["model"]
    vector_forcing = {**_as_dict(config), "model": {**model, "in_fields": "2x pseudoscalar + vector"}}
    with pytest.raises(DataFileError, match="windows have 3 input channels, the model expects 4"):
        train(from_dict(ExperimentConfig, vector_forcing), tmp_path / "fresh2", progress=False)
    no_forcing = {**_as_dict(config), "model": {**model, "in_fields": "2x pseudoscalar"}}
    with pytest.raises(ConfigError, match="model.in_fields: expected 2 copies of out_fields"):
        train(from_dict(ExperimentConfig, no_forcing), tmp_path / "fresh3", progress=False)
    with pytest.raises(ConfigError, match="train.pushforward: expected train.unroll >= 2"):
        _config(data_path, pushforward=True)


def _as_dict(config):
    from sim.config import to_dict

    return to_dict(config)


def test_shipped_experiment_configs_load():
    from pathlib import Path

    from sim.config import load_config, read_yaml

    root = Path(__file__).resolve().parents[2] / "configs" / "ns2d"
    experiments = [p for p in sorted(root.glob("*.yaml")) if "train" in read_yaml(p)]
    assert {p.name for p in experiments} >= {"demo_gcnn_p4m.yaml", "demo_cnn.yaml"}
    for path in experiments:
        config = load_config(ExperimentConfig, path)
        if config.data.state == "velocity":  # history velocity frames, then the vorticity forcing
            assert config.model.in_fields == f"{config.data.history}x vector + 1x pseudoscalar"
        else:
            assert config.model.in_fields.startswith(f"{config.data.history + 1}x")


def test_training_memory_grows_with_the_unroll_and_the_cli_prints_it_without_a_run(
    data_path, tmp_path, capsys
):
    from sim.cli import main
    from sim.train.engine import training_memory

    config = _config(data_path, unroll=3, unroll_every=3)
    peaks = [training_memory(config, unroll=k)["peak"] for k in (1, 2, 3)]
    params = training_memory(config, unroll=1)["parameter_bytes"]
    assert 4 * params < peaks[0] < peaks[1] < peaks[2]  # weights, gradients, AdamW moments, then activations
    # each unrolled step keeps about as much as the first (the same model on the same batch)
    assert peaks[2] - peaks[1] == pytest.approx(peaks[1] - peaks[0], rel=0.2)
    with pytest.raises(ConfigError, match="unroll"):
        training_memory(config, unroll=4)
    cfg = tmp_path / "exp.yaml"
    from sim.config import write_config

    write_config(config, cfg)
    assert main(["train", "--config", str(cfg), "--estimate-memory", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "unroll 3:" in out and "GiB" in out and "parameters:" in out
    assert not (tmp_path / "run").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 2  # training needs --out
