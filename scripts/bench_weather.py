#!/usr/bin/env python
"""Benchmark: WeatherWindows samples/s from zarr and netCDF, against a reference model's training steps/s.

Canonical stores are generated (random float32 fields, the layout ``prepare_weather`` writes: one time
step per chunk, whole levels and grid) at 64x32, 240x121 and 1440x721. The loader reads windows of
``history`` input frames and one target frame in random order through ``DataLoader`` (batch 1, 0 and 2
workers, persistent). The reference model is ``sim.models.FNO2d`` (width 32, 12 modes, 4 layers) taking
the inputs and forcings as channels: one training step (forward, backward, Adam) on one sample. The
ratio loader samples/s / model steps/s says how many times faster the data come than the model uses
them. Goal: >= 5 at 240x121 with 2 workers.

    python scripts/bench_weather.py            # the three grids, writes docs/benchmarks.md
    python scripts/bench_weather.py --quick    # a smoke test at 64x32
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.data.weather import WeatherWindows, compute_statistics, save_statistics  # noqa: E402
from sim.discretize.latlon import equiangular_grid  # noqa: E402
from sim.io import publish_section  # noqa: E402
from sim.runtime import describe_machine, tune_cpu_allocator  # noqa: E402

START, END = "<!-- bench_weather:start -->", "<!-- bench_weather:end -->"
LEVELS13 = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
LEVEL_VARS = [
    "geopotential",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
    "specific_humidity",
]
SURFACE_VARS = [
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
]

# (nlon, nlat, poles, level variables, levels, time steps)
FULL = [
    (64, 32, False, 5, 13, 16),
    (240, 121, True, 5, 13, 16),
    (1440, 721, True, 2, 13, 4),  # fewer variables and steps: 2 x 13 + 4 channels, 4 steps (disk, time)
]
QUICK = [(64, 32, False, 2, 3, 6)]


def make_store(folder: Path, nlon: int, nlat: int, poles: bool, n_level_vars: int, n_levels: int, steps: int):
    """Write the canonical data as zarr (with stats.nc) and netCDF; return (zarr path, netCDF path)."""
    import xarray as xr

    rng = np.random.default_rng(0)
    grid = equiangular_grid(nlat, nlon, poles=poles)
    levels = LEVELS13[:: max(1, 13 // n_levels)][:n_levels] if n_levels < 13 else LEVELS13
    times = np.datetime64("2020-01-01", "ns") + np.arange(steps) * np.timedelta64(6, "h")
    data = {}
    for v in LEVEL_VARS[:n_level_vars]:
        x = rng.standard_normal((steps, len(levels), nlat, nlon), dtype=np.float32)
        data[v] = (("time", "level", "latitude", "longitude"), x)
    for v in SURFACE_VARS:
        data[v] = (
            ("time", "latitude", "longitude"),
            rng.standard_normal((steps, nlat, nlon), dtype=np.float32),
        )
    data["land_sea_mask"] = (("latitude", "longitude"), (rng.random((nlat, nlon)) > 0.7).astype(np.float32))
    coords = {"time": times, "level": np.array(levels), "latitude": grid.lat, "longitude": grid.lon}
    ds = xr.Dataset(data, coords=coords)
    zarr_path, nc_path = folder / f"w{nlon}x{nlat}.zarr", folder / f"w{nlon}x{nlat}.nc"
    enc = {v: {"chunks": (1, *ds[v].shape[1:])} for v in data if v != "land_sea_mask"}
    ds.to_zarr(zarr_path, mode="w", zarr_format=2, consolidated=True, encoding=enc)
    nc_enc = {v: {"chunksizes": (1, *ds[v].shape[1:])} for v in data if v != "land_sea_mask"}
    ds.to_netcdf(nc_path, engine="netcdf4", encoding=nc_enc)
    stats = compute_statistics(ds, time_range=(times[0], times[1]), source=str(zarr_path))
    save_statistics(stats, zarr_path / "stats.nc")
    return zarr_path, nc_path


def loader_rate(win: WeatherWindows, *, workers: int, min_seconds: float) -> float:
    """Samples per second through DataLoader (random order, batch 1), after the first 2 batches."""
    n = 100_000
    sampler = torch.utils.data.RandomSampler(win, replacement=True, num_samples=n)
    loader = torch.utils.data.DataLoader(
        win, batch_size=1, sampler=sampler, num_workers=workers, persistent_workers=workers > 0
    )
    it = iter(loader)
    for _ in range(2):
        next(it)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds or count < 3:
        next(it)
        count += 1
    rate = count / (time.perf_counter() - t0)
    del it, loader
    return rate


def model_rate(win: WeatherWindows, *, min_seconds: float) -> tuple[float, int]:
    """Training steps per second (batch 1) of the reference FNO2d on this data; also its parameter count."""
    from sim.models import FNO2d

    x, y, f = win[0]
    c_in = x.shape[0] * x.shape[1] + f.shape[1]
    model = FNO2d(
        in_fields=f"{c_in}x scalar", out_fields=f"{y.shape[1]}x scalar", width=32, modes=12, layers=4
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    inp = torch.cat([x.flatten(0, 1), f[0]])[None]  # [1, history * C + F, nlat, nlon]
    tgt = y[0][None]  # [1, C, nlat, nlon]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(inp), tgt)
        loss.backward()
        opt.step()

    step()
    times = []
    t_end = time.perf_counter() + min_seconds
    while (time.perf_counter() < t_end and len(times) < 50) or len(times) < 2:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times)), sum(p.numel() for p in model.parameters())


def run(cases, *, workdir: Path, history: int, workers: list[int], min_seconds: float) -> list[dict]:
    rows = []
    for nlon, nlat, poles, nlv, nl, steps in cases:
        folder = workdir / f"{nlon}x{nlat}"
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        zarr_path, nc_path = make_store(folder, nlon, nlat, poles, nlv, nl, steps)
        made = time.perf_counter() - t0
        stats = zarr_path / "stats.nc"
        win = WeatherWindows(zarr_path, history=history)
        m_rate, params = model_rate(win, min_seconds=min_seconds)
        mb = sum(x.numel() * 4 for x in win[0]) / 2**20
        print(
            f"{nlon}x{nlat}: {win.in_channels} channels, {mb:.1f} MB/sample, generated in {made:.1f} s; "
            f"model {m_rate:.2f} steps/s",
            flush=True,
        )
        for fmt, path in (("zarr", zarr_path), ("netcdf", nc_path)):
            w = WeatherWindows(path, stats=stats, history=history)
            for nw in workers:
                rate = loader_rate(w, workers=nw, min_seconds=min_seconds)
                rows.append(
                    dict(
                        grid=f"{nlon}×{nlat}",
                        channels=win.in_channels,
                        forcings=len(win.forcing_names),
                        mb=mb,
                        format=fmt,
                        workers=nw,
                        samples_per_s=rate,
                        model_steps_per_s=m_rate,
                        params=params,
                        ratio=rate / m_rate,
                    )
                )
                print(
                    f"  {fmt:6s} workers={nw}: {rate:8.1f} samples/s, ratio {rate / m_rate:6.1f}", flush=True
                )
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def format_section(
    rows: list[dict], *, command: str, machine: str, load: str, history: int, threads: int = 1
) -> str:
    lines = [
        "## Weather loader (WeatherWindows) against a reference training step",
        "",
        f"`{command}` on {machine}; load average before the run {load}. Generated canonical stores (random "
        "float32; one time step per chunk, as `sim data prepare` writes them: zarr format 2 with its "
        "default compression, netCDF-4 uncompressed); 64×32 and 240×121 hold 5 pressure-level variables "
        "× 13 levels + 4 surface variables (69 channels), 1440×721 only 2 × 13 + 4 (30 channels) to fit "
        f"disk and time. A sample is {history} input frames + 1 target frame + forcings (9 time/rotation "
        "fields + land-sea mask), read in random order through `DataLoader(batch_size=1)`. Reference "
        "model: `FNO2d` (width 32, 12 modes, 4 layers), one training step (forward, backward, Adam) on "
        f"one sample with {threads} torch thread(s) (`--threads`; default 1: on the shared 2-core machine "
        "2 threads ran the step 5x slower than 1). Ratio = loader samples/s ÷ model steps/s (both "
        "measured here, "
        "one after the other; in training on CPU they would share the cores). Goal: ≥ 5 at 240×121 with "
        "2 workers.",
        "",
        "| grid | channels | MB/sample | format | workers | samples/s | model steps/s | ratio |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['grid']} | {r['channels']} | {r['mb']:.1f} | {r['format']} | {r['workers']} | "
            f"{r['samples_per_s']:.1f} | {r['model_steps_per_s']:.2f} | {r['ratio']:.1f} |"
        )
    goal = [r for r in rows if r["grid"] == "240×121" and r["workers"] == 2]
    if goal:
        worst = min(r["ratio"] for r in goal)
        verdict = "met" if worst >= 5 else "NOT met"
        by_format = ", ".join(f"{r['format']} {r['ratio']:.1f}" for r in goal)
        lines += ["", f"Goal at 240×121 with 2 workers: {verdict} (worst ratio {worst:.1f}; {by_format})."]
        if worst < 5:
            lines.append(
                "Where zarr falls short, the cost is per chunk, not per byte: zarr-python 3 spends about "
                "1 ms "
                "on each chunk it reads (1.2 ms for a 1.5 MB uncompressed chunk, 2.4 ms with the default "
                "lz4, against 0.09 ms to copy it), and a sample here reads 27 chunks; on this 2-core machine "
                "the reading already occupies both cores, so 2 workers add nothing. netCDF-4 stores of the "
                "same data read 2-3x faster on CPU."
            )
    else:
        lines += ["", "Goal at 240×121 with 2 workers: not measured in this run."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test: 64x32, few channels, short runs")
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the model and worker 0")
    parser.add_argument("--min-seconds", type=float, default=None, help="least duration of a timed run")
    parser.add_argument("--workdir", type=Path, default=None, help="where to generate the data (a temp dir)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md",
        help="markdown file to update; '-' to only print",
    )
    args = parser.parse_args(argv)
    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.3 if args.quick else 4.0)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = describe_machine()
    cases = QUICK if args.quick else FULL
    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench_weather-")) if own else args.workdir
    try:
        rows = run(
            cases, workdir=workdir, history=args.history, workers=args.workers, min_seconds=min_seconds
        )
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    command = "python scripts/bench_weather.py" + (" --quick" if args.quick else "")
    command += f" --threads {args.threads}" if args.threads != 1 else ""
    section = format_section(
        rows, command=command, machine=machine, load=load, history=args.history, threads=args.threads
    )
    publish_section(args.out, "bench_weather", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
