#!/usr/bin/env python
"""Benchmark: streaming rollouts (``sim.evaluate.rollout_to_netcdf``): memory against rollout length, time
per step, and the surrogate against the solver it replaces.

* **Memory.** Each rollout length runs in a fresh process (peak RSS is a per-process high-water mark): a
  small stepper (the P4M G-CNN config with 2 regular fields and 1 block) rolls 4 samples of 64x64 out for
  100, 1000, 4000 steps into a netCDF file. Reported: the RSS before the rollout (after imports, model
  and a warm-up step), the peak RSS, their difference, the wall time per step and the file size. A flat
  difference means the trajectory is not held in memory.
* **Solver vs surrogate.** The demo model (``configs/ns2d/gcnn_p4m.yaml``, untrained: only the cost
  matters) makes one step per stored frame; the solver advances the same model time, one record
  interval, at the data's settings (the file's ``solver_resolution``, ``viscosity``, ``dt``, and the
  frame spacing), at batch 1 and 32. The ratio solver / surrogate is the speed-up.

    python scripts/bench_rollout.py                       # CPU; makes a small demo-like data set
    python scripts/bench_rollout.py --data runs/demo/ns2d_demo.nc --out -

Writes its section into docs/benchmarks.md between the markers of this benchmark (other sections stay).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sim  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.data import NS2DDataConfig, generate_ns2d  # noqa: E402
from sim.evaluate import rollout_to_netcdf  # noqa: E402
from sim.io import write_markdown_section  # noqa: E402
from sim.models import count_parameters  # noqa: E402
from sim.runtime import describe_machine, time_interleaved, tune_cpu_allocator  # noqa: E402
from sim.solvers import NavierStokes2D, vorticity_forcing  # noqa: E402
from sim.train import FieldStats, Stepper  # noqa: E402

START, END = "<!-- bench_rollout:start -->", "<!-- bench_rollout:end -->"
SMALL = ["model.hidden=2", "model.blocks=1"]


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return kib / 1024


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_stepper(
    overrides: list[str], *, delta_std: float = 1e-4, config: str = "configs/ns2d/gcnn_p4m.yaml"
) -> Stepper:
    """An untrained stepper around a demo model; a tiny tendency scale keeps long rollouts finite."""
    torch.manual_seed(0)
    model = sim.build_model(ROOT / config, overrides)
    stats = lambda std: FieldStats(torch.zeros(1), torch.full((1,), std))  # noqa: E731
    return Stepper(model, history=4, state=stats(1.0), delta=stats(delta_std), forcing=stats(0.1))


def make_data(folder: Path, samples: int) -> Path:
    """The demo data set's settings (solved at 128^2, stored at 64^2), ``samples`` trajectories, 5 frames."""
    config = load_config(
        NS2DDataConfig,
        ROOT / "configs/data/ns2d_demo.yaml",
        [f"samples={samples}", "t_final=2.0", "device=cpu"],
    )
    return generate_ns2d(config, folder / "ns2d_bench.nc", progress=False)


def child_memory(data: Path, steps: int, samples: int, chunk: int) -> dict:
    """One rollout in this process; RSS before and at peak."""
    tune_cpu_allocator()
    stepper = make_stepper(SMALL)
    with tempfile.TemporaryDirectory(dir=data.parent) as tmp:
        warm = Path(tmp) / "warm.nc"
        rollout_to_netcdf(stepper, data, warm, steps=1, samples=range(samples), progress=False)
        warm.unlink()
        before = _rss_mib()
        out = Path(tmp) / "roll.nc"
        t0 = time.perf_counter()
        rollout_to_netcdf(
            stepper,
            data,
            out,
            steps=steps,
            samples=range(samples),
            batch_size=samples,
            chunk=chunk,
            progress=False,
        )
        wall = time.perf_counter() - t0
        import xarray as xr

        with xr.open_dataset(out) as ds:
            diverged = int((ds["diverged_at"].values >= 0).sum())
        size = out.stat().st_size
    return {
        "steps": steps,
        "samples": samples,
        "rss_before": before,
        "rss_peak": _peak_rss_mib(),
        "ms_per_step": 1e3 * wall / steps,
        "file_mib": size / 2**20,
        "diverged": diverged,
    }


def bench_memory(data: Path, steps_list: list[int], samples: int, chunk: int) -> list[dict]:
    rows = []
    for steps in steps_list:
        cmd = [sys.executable, __file__, "--child", str(data), str(steps), str(samples), str(chunk)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"child for {steps} steps failed:\n{done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{steps:6d} steps: RSS {row['rss_before']:.0f} -> peak {row['rss_peak']:.0f} MiB "
            f"(+{row['rss_peak'] - row['rss_before']:.1f}), {row['ms_per_step']:.2f} ms/step, "
            f"file {row['file_mib']:.1f} MiB, diverged {row['diverged']}",
            flush=True,
        )
    return rows


SPEED_MODELS = {
    "P4M G-CNN": "configs/ns2d/gcnn_p4m.yaml",
    "CNN": "configs/ns2d/cnn.yaml",
    "FNO-2D": "configs/ns2d/fno.yaml",
}
PAPER = {"resolution": 256, "dt": 1e-4}  # the FNO paper's data: 256^2, dt = 1e-4 (Li et al. 2021, A.3.3)


def bench_speed(
    data: Path, batches: list[int], *, repeats: int, min_seconds: float, folder: Path, paper_steps: int = 10
) -> tuple[list[dict], dict]:
    """Per batch size: the solver over one record interval against one step of each surrogate, timed
    alternately in this process (``time_interleaved``); and the solver at the FNO paper's settings,
    timed over ``paper_steps`` steps and scaled to one interval."""
    import xarray as xr

    with xr.open_dataset(data) as ds:
        attrs = dict(ds.attrs)
        times = ds["time"].values
        n_samples = ds.sizes["sample"]
        n = ds.sizes["x"]
    interval = float(times[1] - times[0])
    settings = {
        "resolution": n,
        "solver_resolution": int(attrs["solver_resolution"]),
        "viscosity": float(attrs["viscosity"]),
        "dt": float(attrs["dt"]),
        "interval": interval,
        "solver_steps": max(1, math.ceil(interval / float(attrs["dt"]) - 1e-9)),
        "paper_steps": round(interval / PAPER["dt"]),
    }
    solver = NavierStokes2D(settings["solver_resolution"], settings["viscosity"], settings["dt"])
    paper = NavierStokes2D(PAPER["resolution"], settings["viscosity"], PAPER["dt"])
    kind = attrs.get("forcing_kind", "fno")
    amplitude = float(attrs.get("forcing_amplitude", 0.1))
    wavenumber = int(attrs.get("forcing_wavenumber", 1))
    forcing = vorticity_forcing(kind, solver.grid, amplitude=amplitude, wavenumber=wavenumber)
    paper_forcing = vorticity_forcing(kind, paper.grid, amplitude=amplitude, wavenumber=wavenumber)
    steppers = {name: make_stepper([], config=path).eval() for name, path in SPEED_MODELS.items()}
    settings["params"] = {name: count_parameters(st.model) for name, st in steppers.items()}
    rows = []
    for b in batches:
        if b > n_samples:
            raise SystemExit(f"--batches {b}: the data file has only {n_samples} samples")
        w0 = torch.randn(b, solver.resolution, solver.resolution) * 0.5
        w0 = solver.advance(w0, interval, forcing)  # a smoother start
        history = torch.randn(b, 4, 1, n, n)  # [B, T, C, H, W]
        f = torch.randn(b, 1, n, n)  # [B, F, H, W]
        fns = {"solver": lambda w0=w0: solver.advance(w0, interval, forcing)}
        for name, stepper in steppers.items():

            def step(stepper=stepper, history=history, f=f):
                with torch.no_grad():
                    stepper(history, f)

            fns[name] = step
        counter = iter(range(10**6))

        def roll(b=b, counter=counter):  # the G-CNN through rollout_to_netcdf, 2 steps, writes included
            rollout_to_netcdf(
                steppers["P4M G-CNN"],
                data,
                folder / f"speed_{b}_{next(counter)}.nc",
                steps=2,
                samples=range(b),
                batch_size=b,
                progress=False,
            )

        fns["P4M G-CNN + netCDF"] = roll
        t = time_interleaved(fns, repeats=repeats, min_seconds=min_seconds)
        wp = torch.randn(b, paper.resolution, paper.resolution) * 0.5
        tp = time_interleaved(
            {"paper": lambda wp=wp: paper.advance(wp, paper_steps * PAPER["dt"], paper_forcing)},
            repeats=repeats,
            min_seconds=min_seconds,
        )
        row = {
            "batch": b,
            "solver_s": t["solver"]["median"],
            "paper_s": tp["paper"]["median"] / paper_steps * settings["paper_steps"],
            "netcdf_s": t["P4M G-CNN + netCDF"]["median"] / 2,
            "clean": f"{t['solver']['clean']}/{t['solver']['rounds']}",
        }
        row["models"] = {name: t[name]["median"] for name in steppers}
        rows.append(row)
        print(
            f"batch {b:3d}: solver {row['solver_s'] * 1e3:9.1f} ms per interval "
            f"({settings['solver_steps']} steps); "
            + ", ".join(
                f"{k} {v * 1e3:.1f} ms ({row['solver_s'] / v:.3g}x)" for k, v in row["models"].items()
            ),
            flush=True,
        )
    return rows, settings


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it), atomically."""
    write_markdown_section(path, "bench_rollout", section)


def _section(memory: list[dict], speed: list[dict], settings: dict, args, seconds: float, load: tuple) -> str:
    lines = [
        "## Streaming rollouts: memory, time per step, surrogate vs solver (cpu, float32)",
        "",
        f"`python scripts/bench_rollout.py` on {describe_machine()}; {seconds:.0f} s in all "
        "(1-minute load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after: other jobs shared the 2 cores, so the times are "
        "noisy). CPU allocator tuned as the `sim` command does it.",
        "",
        f"**Memory against rollout length.** `rollout_to_netcdf` of a small untrained stepper (P4M G-CNN, "
        f"2 regular fields, 1 block), {memory[0]['samples']} samples of {settings['resolution']}², "
        "one batch, "
        f"chunks of {args.chunk} steps, each length in a fresh process. *Before*: RSS after imports, "
        "model and a 1-step warm-up rollout; *peak*: the process's maximum RSS (`getrusage`).",
        "",
        "| steps | RSS before MiB | peak RSS MiB | peak − before MiB | ms/step | file MiB | diverged |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in memory:
        lines.append(
            f"| {r['steps']} | {r['rss_before']:.0f} | {r['rss_peak']:.0f} | "
            f"{r['rss_peak'] - r['rss_before']:.1f} | {r['ms_per_step']:.2f} | {r['file_mib']:.1f} | "
            f"{r['diverged']}/{r['samples']} |"
        )
    names = list(speed[0]["models"])
    params = ", ".join(f"{k} {v / 1e3:.0f}k" for k, v in settings["params"].items())
    lines += [
        "",
        f"**Surrogate vs solver.** One step of each surrogate at {settings['resolution']}² (untrained "
        f"demo configs of `configs/ns2d/`, parameters: {params}; `torch.no_grad()`, eval mode) against "
        f"`NavierStokes2D` advancing the same model time, one record interval of {settings['interval']:g} "
        f"= {settings['solver_steps']} steps of dt = {settings['dt']:g} at {settings['solver_resolution']}², "
        f"viscosity {settings['viscosity']:g}: the settings that made the demo data (second order in time, "
        "within 1e-6 of a 40× smaller dt). All timed alternately in one process, medians of "
        f"{args.repeats}+ rounds. *Paper solver*: the same solver at the FNO paper's data settings "
        f"({PAPER['resolution']}², dt = {PAPER['dt']:g}, {settings['paper_steps']} steps per interval), "
        f"timed "
        f"over {args.paper_steps} steps and scaled: the reference the FNO paper's speed-ups are quoted "
        "against. *+ netCDF*: the G-CNN through `rollout_to_netcdf`, file writes included. Issue goal: "
        "speed-up ≥ 100× against the solver that made the data.",
        "",
        "| batch | solver ms / interval | paper solver ms / interval | "
        + " | ".join(f"{k} ms / step" for k in names)
        + " | G-CNN + netCDF ms / step | "
        + " | ".join(f"speed-up {k}" for k in names)
        + " | speed-up vs paper solver (best model) |",
        "|---:|---:|---:|" + "---:|" * (2 * len(names) + 2),
    ]
    for r in speed:
        ups = [r["solver_s"] / r["models"][k] for k in names]
        paper_up = max(r["paper_s"] / r["models"][k] for k in names)
        lines.append(
            f"| {r['batch']} | {1e3 * r['solver_s']:.1f} | {1e3 * r['paper_s']:.0f} | "
            + " | ".join(f"{1e3 * r['models'][k]:.1f}" for k in names)
            + f" | {1e3 * r['netcdf_s']:.1f} | "
            + " | ".join(f"{u:.2g}×" for u in ups)
            + f" | {paper_up:.0f}× |"
        )
    best = max(r["solver_s"] / r["models"][k] for r in speed for k in names)
    verdict = "met" if best >= 100 else f"**not met** on this machine (best speed-up {best:.2g}×)"
    budget = min(1e3 * r["solver_s"] / 100 / r["batch"] for r in speed)
    lines += [
        "",
        f"Goal ≥ 100×: {verdict}. The solver that made the data is cheap: an IMEX step at "
        f"{settings['solver_resolution']}² is a few FFTs, and a record interval takes "
        f"{settings['solver_steps']} of them, while each surrogate step is ~100k parameters of "
        f"convolutions over {settings['resolution']}². For 100× a surrogate would have to take at most "
        f"{budget:.2g} ms per sample and step here. Against the FNO paper's solver settings the same "
        "surrogates are the speed-ups in the last column: the headline ratios of the literature depend on "
        "the reference solver's resolution and time step at least as much as on the surrogate.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        data, steps, samples, chunk = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        print(json.dumps(child_memory(Path(data), steps, samples, chunk)))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="a 64x64 data file with >= 32 samples (default: made here)")
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--samples", type=int, default=4, help="samples in the memory runs")
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.3, help="least time per timed run")
    parser.add_argument("--paper-steps", type=int, default=10, help="steps timed of the paper solver")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="markdown file to update; '-' to print",
    )
    args = parser.parse_args(argv)
    tune_cpu_allocator()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = args.data or make_data(folder, max(32, max(args.batches), args.samples))
        memory = bench_memory(data, args.steps, args.samples, args.chunk)
        speed, settings = bench_speed(
            data,
            args.batches,
            repeats=args.repeats,
            min_seconds=args.min_seconds,
            folder=folder,
            paper_steps=args.paper_steps,
        )
    section = _section(memory, speed, settings, args, time.perf_counter() - t0, (load0, os.getloadavg()[0]))
    print("\n" + section)
    if str(args.out) != "-":
        write_section(args.out, section)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
