"""The `sim` command line: help texts, one-line errors with exit code 2, outputs beside the data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from sim.cli import main
from sim.evaluate._common import transform_vorticity
from sim.train import load_stepper

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "solver.resolution=16",
    "solver.dt=0.01",
    "resolution=8",
    "samples=2",
    "batch_size=2",
    "t_final=0.2",
    "record_every=0.1",
    "device=cpu",
]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=ROOT, env=env
    )


def test_help_texts_explain_every_command():
    top = _run("--help")
    assert top.returncode == 0 and "generate" in top.stdout and "inspect" in top.stdout
    gen = _run("generate", "ns2d", "--help")
    assert gen.returncode == 0
    for word in ("--config", "--out", "--overwrite", "KEY=VALUE", "netCDF"):
        assert word in gen.stdout
    assert _run("inspect", "--help").returncode == 0
    assert _run("generate", "--help").returncode == 0


def _generate(out, *extra: str) -> int:
    demo = str(ROOT / "configs/data/ns2d_demo.yaml")
    return main(["generate", "ns2d", "--config", demo, "--out", str(out), "--no-progress", *TINY, *extra])


def test_generate_writes_data_config_and_preview(tmp_path, capsys):
    out = tmp_path / "d.nc"
    assert _generate(out, "seed=3") == 0
    assert out.is_file() and (tmp_path / "d.png").is_file()
    resolved = yaml.safe_load((tmp_path / "d.yaml").read_text())
    assert resolved["seed"] == 3 and resolved["solver"]["resolution"] == 16
    assert resolved["solver"]["viscosity"] == 1e-3
    with xr.open_dataset(out) as ds:
        assert ds["vorticity"].shape == (2, 3, 8, 8)
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    # running again refuses to overwrite any of the three files
    code = _generate(out)
    err = capsys.readouterr().err
    assert code == 2 and "already exists (pass --overwrite" in err and err.count("\n") == 1
    assert _generate(out, "seed=4", "--overwrite") == 0
    assert yaml.safe_load((tmp_path / "d.yaml").read_text())["seed"] == 4
    assert main(["inspect", str(out)]) == 0
    assert "vorticity" in capsys.readouterr().out


def test_print_config(capsys):
    code = main(
        [
            "generate",
            "ns2d",
            "--config",
            str(ROOT / "configs/data/ns2d_fno.yaml"),
            "--print-config",
            "solver.dt=2.5e-4",
        ]
    )
    assert code == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["solver"]["dt"] == 2.5e-4 and resolved["solver"]["resolution"] == 256


@pytest.mark.parametrize(
    "extra,message",
    [
        (["solver.viscocity=1"], "unknown key 'solver.viscocity'"),
        (["solver.resolution=31"], "solver.resolution: expected a positive even int, got 31"),
        (["solver.viscosity=-1e-3"], "solver.viscosity: expected a float >= 0, got -0.001"),
        (["samples=many"], "samples: expected an int, got 'many'"),
        (["forcing.kind=spiral"], "forcing.kind"),
        (["nodots"], "expected KEY=VALUE"),
    ],
)
def test_bad_overrides_are_one_line_errors(extra, message, capsys):
    code = main(
        ["generate", "ns2d", "--config", str(ROOT / "configs/data/ns2d_demo.yaml"), "--print-config", *extra]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("sim: error: ") and err.count("\n") == 1 and message in err


def test_bad_config_file_names_the_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("solver:\n  resolution: 64\n  dt: fast\n")
    code = main(["generate", "ns2d", "--config", str(bad), "--print-config"])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "solver.dt" in err and err.count("\n") == 1
    code = main(["generate", "ns2d", "--config", str(tmp_path / "missing.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "missing.yaml" in err and "no such file" in err


def test_errors_from_the_console_script_have_no_traceback(tmp_path):
    result = _run(
        "generate",
        "ns2d",
        "--config",
        "configs/data/ns2d_demo.yaml",
        "--out",
        str(tmp_path / "nowhere" / "x.nc"),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "output folder" in result.stderr and "does not exist" in result.stderr
    missing = _run("inspect", str(tmp_path / "none.nc"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_every_shipped_data_config_loads(capsys):
    commands = {kind: ["generate", kind, "--config"] for kind in ("ns2d", "swe", "cylinder")}
    commands |= {"era5": ["data", "prepare"], "weather": ["data", "prepare"]}
    paths = sorted((ROOT / "configs" / "data").glob("*.yaml"))
    assert paths
    for path in paths:
        command = commands[path.stem.split("_")[0]]  # a new kind of config needs a line here
        assert main([*command, str(path), "--print-config"]) == 0, path
    capsys.readouterr()


def _train_tiny(
    tmp_path,
    *,
    model: str,
    data: str,
    train: str,
    t_final: float,
    fields: str = "in_fields: 3x pseudoscalar, out_fields: 1x pseudoscalar",
) -> tuple[Path, str]:
    """Generate 3 tiny samples up to ``t_final``, train on 2 through ``sim train``; (data, checkpoint).

    ``model``, ``data``, ``train``: the YAML flow-mapping bodies of the experiment's sections (``model``
    without the ``fields``, ``data`` without the path, the history of 2 and the sample split)."""
    path = tmp_path / "d.nc"
    assert _generate(path, "samples=3", f"t_final={t_final}") == 0
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"model: {{{fields}, {model}}}\n"
        f"data: {{path: {path}, history: 2, train_samples: [0, 2], val_samples: [2, 3]{data}}}\n"
        f"train: {{log_every: 1, device: cpu, {train}}}\n"
    )
    run = tmp_path / "run"
    assert main(["train", "--config", str(exp), "--out", str(run), "--no-progress"]) == 0
    return path, str(run / "checkpoints" / "last.pt")


def test_train_rollout_evaluate_end_to_end(tmp_path, capsys):
    data, ckpt = _train_tiny(
        tmp_path,
        model="name: gcnn_resnet, group: P4M, hidden: 2, blocks: 1, kernel_size: 3",
        data="",
        train="steps: 2, batch_size: 2, val_every: 2, checkpoint_every: 2",
        t_final=0.6,
    )
    for element in ("0", "5"):
        out = tmp_path / f"r{element}.nc"
        args = [
            "rollout",
            "--checkpoint",
            ckpt,
            "--data",
            str(data),
            "--steps",
            "6",
            "--samples",
            "2:3",
            "--element",
            element,
            "--out",
            str(out),
            "--no-progress",
        ]
        assert main(args) == 0
    assert (
        main(
            [
                "evaluate",
                f"P4M={tmp_path / 'r0.nc'}",
                f"P4M={tmp_path / 'r5.nc'}",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| P4M |" in printed and (tmp_path / "eval" / "report.md").is_file()
    # bad input: a truncated checkpoint, a bad sample range, an existing rollout file
    bad = tmp_path / "bad.pt"
    bad.write_bytes(open(ckpt, "rb").read()[:500])
    for args, message in [
        (
            [
                "rollout",
                "--checkpoint",
                str(bad),
                "--data",
                str(data),
                "--steps",
                "2",
                "--out",
                str(tmp_path / "x.nc"),
            ],
            "not a readable checkpoint",
        ),
        (
            [
                "rollout",
                "--checkpoint",
                ckpt,
                "--data",
                str(data),
                "--steps",
                "2",
                "--samples",
                "3:1",
                "--out",
                str(tmp_path / "x.nc"),
            ],
            "--samples: expected 0 <= A < B",
        ),
        (
            [
                "rollout",
                "--checkpoint",
                ckpt,
                "--data",
                str(data),
                "--steps",
                "2",
                "--out",
                str(tmp_path / "r0.nc"),
            ],
            "already exists",
        ),
    ]:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_rollout_checks_the_data_against_the_checkpoint_and_keeps_its_stride(tmp_path, capsys):
    data, ckpt = _train_tiny(
        tmp_path,
        model="name: cnn_resnet, width: 2, blocks: 1, kernel_size: 3",
        data=", stride: 2",
        train="steps: 1, batch_size: 1, val_every: 1, checkpoint_every: 1",
        t_final=0.9,
    )

    def rollout(path, out, *extra):
        return main(
            ["rollout", "--checkpoint", ckpt, "--data", str(path), "--steps", "2", "--out", str(out)]
            + ["--no-progress", *extra]
        )

    # the model steps two frames at a time: lead l is frame start + (history - 1 + l) * stride
    assert rollout(data, tmp_path / "r.nc") == 0
    with xr.open_dataset(tmp_path / "r.nc") as ds, xr.open_dataset(data) as truth:
        assert ds.attrs["stride"] == 2
        frame_times = truth["time"].values[[2 + 2 * lead for lead in (1, 2)]]
        np.testing.assert_allclose(ds["time"].values, frame_times, rtol=1e-12)
        np.testing.assert_allclose(ds["lead_model_time"].values, [0.2, 0.4], rtol=1e-12)
    capsys.readouterr()

    # other grids, time steps or viscosity: one line naming what differs, nothing written
    for name, extra, message in [
        ("grid", ["resolution=4", "solver.resolution=8"], "grid [4, 4] (trained on [8, 8])"),
        ("interval", ["record_every=0.2", "t_final=1.2"], "step_time 0.4 (trained on 0.2)"),
        ("nu", ["solver.viscosity=0.01"], "viscosity 0.01 (trained on 0.001)"),
    ]:
        other = tmp_path / f"{name}.nc"
        assert _generate(other, "samples=1", "t_final=0.9", *extra) == 0
        capsys.readouterr()
        assert rollout(other, tmp_path / f"r_{name}.nc") == 2
        err = capsys.readouterr().err
        assert message in err and str(other) in err and "--ignore-data-mismatch" in err, err
        assert err.count("\n") == 1 and not (tmp_path / f"r_{name}.nc").exists()
    assert rollout(tmp_path / "grid.nc", tmp_path / "r_grid.nc", "--ignore-data-mismatch") == 0


def test_data_inspect_and_prepare_from_cds_files(tmp_path, capsys):
    from sim.data.era5_synthetic import write_era5_sample

    raw = tmp_path / "raw"
    raw.mkdir()
    levels = (500, 850)
    write_era5_sample(
        raw / "pl.nc", convention="cds_legacy", times=8, levels=levels, variables=("temperature",)
    )
    write_era5_sample(raw / "sl.nc", convention="cds_legacy", times=8, variables=("2m_temperature",))
    assert main(["data", "inspect", str(raw / "pl.nc")]) == 0
    text = capsys.readouterr().out
    assert "cds_legacy" in text and "temperature" in text
    config = tmp_path / "prep.yaml"
    config.write_text(
        f"sources: ['{raw}/*.nc']\ntrain: {{start: '2020-01-01', end: '2020-01-02'}}\n"
        "variables: [temperature, 2m_temperature]\nlevels: [500, 850]\n"
    )
    store = tmp_path / "train.zarr"
    args = ["data", "prepare", str(config), "--out", str(store), "--no-progress"]
    assert main(args) == 0
    assert (store / "stats.nc").is_file() and f"wrote {store}" in capsys.readouterr().out
    with xr.open_zarr(store) as ds:
        assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
        assert ds.sizes["time"] == 8 and ds["level"].values.tolist() == [500, 850]
    # bad input: one line, exit code 2, nothing overwritten
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1
    assert main(["data", "prepare", str(config), "--out", str(tmp_path / "x.zarr"), "levels=[300]"]) == 2
    err = capsys.readouterr().err
    assert "300" in err and err.count("\n") == 1, err
    (tmp_path / "cut.nc").write_bytes((raw / "pl.nc").read_bytes()[:3000])
    assert main(["data", "inspect", str(tmp_path / "cut.nc")]) == 0  # explains, does not crash
    assert "truncated" in capsys.readouterr().out


def test_swe_data_runs_through_the_weather_pipeline(tmp_path, capsys):
    # sim generate swe -> sim data prepare -> WeatherWindows: two trajectories with a gap between them,
    # the tilted rotation axis carried through to the forcings
    from sim.data import WeatherWindows

    out = tmp_path / "swe.nc"
    tiny = [
        "grid.nlat=16",
        "grid.nlon=32",
        "solver.dt=3600",
        "solver.tilt=30",
        "duration_days=1",
        "samples=2",
    ]
    config = str(ROOT / "configs/data/swe_demo.yaml")
    assert main(["generate", "swe", "--config", config, "--out", str(out), "--no-progress", *tiny]) == 0
    files = sorted(tmp_path.glob("swe_*.nc"))
    assert [f.name for f in files] == ["swe_000.nc", "swe_001.nc"]
    assert (tmp_path / "swe_000.png").is_file() and (tmp_path / "swe_001.yaml").is_file()
    prep = tmp_path / "prep.yaml"
    prep.write_text(
        f"sources: ['{tmp_path}/swe_*.nc']\ntrain: {{start: '2000-01-01', end: '2000-01-01T12'}}\n"
    )
    store = tmp_path / "swe.zarr"
    assert main(["data", "prepare", str(prep), "--out", str(store), "--no-progress"]) == 0
    capsys.readouterr()
    windows = WeatherWindows(store, history=2)
    assert windows.channel_names == ["geopotential@500", "u_component_of_wind@500", "v_component_of_wind@500"]
    assert len(windows) == 2 * (5 - 2)  # 5 frames per 1-day trajectory, no window across the gap
    tilt = np.deg2rad(30.0)
    np.testing.assert_allclose(np.linalg.norm(windows.rotation), 1.0, rtol=1e-3)
    assert windows.rotation[2] == pytest.approx(np.cos(tilt), rel=1e-3)
    inputs, targets, forcings = windows[len(windows) - 1]
    assert inputs.shape == (2, 3, 16, 32) and targets.shape == (1, 3, 16, 32)
    assert torch.isfinite(inputs).all() and forcings.shape == (1, 9, 16, 32)
    assert main(["generate", "swe", "--config", config, "--out", str(out), *tiny]) == 2  # no overwrite
    assert "already exists" in capsys.readouterr().err


def test_a_velocity_model_trains_rolls_out_and_is_evaluated_on_vorticity(tmp_path, capsys):
    data, ckpt = _train_tiny(
        tmp_path,
        model="name: steerable_resnet, group: O2, hidden: 1, blocks: 1, kernel_size: 3, norm: none",
        fields="in_fields: 2x vector + 1x pseudoscalar, out_fields: 1x vector",
        data=", state: velocity",
        train="steps: 2, batch_size: 2, val_every: 2, checkpoint_every: 2, conserve_mean: true, "
        "divergence_free: true",
        t_final=0.6,
    )
    stepper, config, raw = load_stepper(ckpt)
    assert stepper.divergence_free and config.train.divergence_free
    assert (
        stepper.state_channels == 2 and config.data.state == "velocity" and raw["data"]["state"] == "velocity"
    )
    assert float(stepper.state_mean.abs().max()) == 0.0  # a vector has no invariant mean under D4
    out = tmp_path / "r.nc"
    args = ["rollout", "--checkpoint", ckpt, "--data", str(data), "--steps", "3", "--samples", "2:3"]
    assert main([*args, "--element", "5", "--out", str(out), "--no-progress"]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.attrs["state"] == "velocity" and ds["vorticity"].shape == (1, 3, 8, 8)
        assert np.isfinite(ds["vorticity"].values).all() and int(ds["diverged_at"][0]) == -1
    # the model is exactly D4-equivariant: rolling out from mirrored data gives the mirrored rollout
    assert main([*args, "--element", "0", "--out", str(tmp_path / "r0.nc"), "--no-progress"]) == 0
    with xr.open_dataset(out) as ds, xr.open_dataset(tmp_path / "r0.nc") as ds0:
        mirrored = transform_vorticity(torch.from_numpy(ds0["vorticity"].values), 5).numpy()
        np.testing.assert_allclose(
            ds["vorticity"].values, mirrored, rtol=0, atol=1e-4 * np.abs(mirrored).max()
        )
    assert main(["evaluate", f"velocity={out}", "--out", str(tmp_path / "eval")]) == 0
    assert "| velocity |" in capsys.readouterr().out
    # a vorticity model's out_fields with velocity data: one line naming both
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model: {name: cnn_resnet, width: 2, blocks: 1, in_fields: 3x pseudoscalar, "
        f"out_fields: 1x pseudoscalar}}\ndata: {{path: {data}, history: 2, state: velocity}}\n"
    )
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "data.state 'velocity' is 1x vector, got '1x pseudoscalar'" in err


def test_weather_train_rollout_evaluate_end_to_end(weather_store, tmp_path, capsys):
    """sim train (a configs/weather model, shrunk) -> sim rollout past the data -> sim evaluate."""
    store, _ = weather_store
    run, rollout = tmp_path / "run", tmp_path / "r.nc"
    tiny = [
        f"data.path={store}",
        "data.train_period={start: '2020-01-01', end: '2020-01-03'}",
        "data.val_period={start: '2020-01-03T06', end: '2020-01-04T18'}",
        "model.latent=8",
        "model.blocks=1",
        "model.vectors=2",
        "model.mesh_splits=2",
        "train.steps=2",
        "train.batch_size=2",
        "train.unroll=1",
        "train.unroll_every=0",
        "train.warmup_steps=0",
        "train.val_every=2",
        "train.checkpoint_every=2",
        "train.device=cpu",
    ]
    config = str(ROOT / "configs/weather/equivariant_graphcast.yaml")
    assert main(["train", "--config", config, "--out", str(run), "--no-progress", *tiny]) == 0
    ckpt = str(run / "checkpoints" / "last.pt")
    args = ["rollout", "--checkpoint", ckpt, "--data", str(store), "--out", str(rollout), "--no-progress"]
    assert main([*args, "--steps", "24", "--save-every", "2", "--max-inits", "2", "--init-every", "3"]) == 0
    assert main([*args, "--steps", "2", "--element", "1", "--overwrite"]) == 2  # grid-model options
    assert "--element" in capsys.readouterr().err
    assert main(["evaluate", f"EqGC={rollout}", "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "EqGC" in printed and "persistence" in printed
    assert (tmp_path / "eval" / "report.md").is_file() and (tmp_path / "eval" / "stability.png").is_file()
