#!/usr/bin/env python
"""Benchmark: ShallowWaterSphere ms per step against torch-harmonics' ShallowWaterSolver, side by side.

Both solve the Galewsky case on the same grid with the same truncation (lmax = ceil(nlat / 3)) and dt.
A step of ours is an RK4 step (4 tendency evaluations) by default, theirs an AB3 step (1 evaluation):
the table also gives ours with ``stepper="ab3"``, the like-for-like comparison. RK4 is stable at about
4 times AB3's dt, so per simulated hour the two steppers cost about the same.

    python scripts/bench_swe.py                 # CPU, float32, 128x256 and 256x512, batch 1 and 8
    python scripts/bench_swe.py --quick --out -  # a small smoke run, printed only

Writes its table into docs/benchmarks.md between the markers of this benchmark (other sections stay).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.io import publish_section  # noqa: E402
from sim.runtime import describe_machine, load_average, time_interleaved, tune_cpu_allocator  # noqa: E402
from sim.solvers.swe import ShallowWaterSphere  # noqa: E402


def bench_one(nlat: int, batch: int, *, steps: int, repeats: int, min_seconds: float, device, dtype) -> dict:
    """Median ms per step of ours (rk4, ab3) and theirs (ab3), timed alternately."""
    from torch_harmonics.examples.shallow_water_equations import ShallowWaterSolver

    nlon, dt = 2 * nlat, 600.0 * 128 / nlat
    lmax = -(-nlat // 3)
    theirs = ShallowWaterSolver(nlat, nlon, dt, lmax=lmax, mmax=lmax).to(device=device, dtype=dtype)
    rk4 = ShallowWaterSphere(nlat, nlon, dt=dt, lmax=lmax, dtype=dtype).to(device)
    ab3 = ShallowWaterSphere(nlat, nlon, dt=dt, lmax=lmax, dtype=dtype, stepper="ab3").to(device)
    x = rk4.galewsky().expand(batch, -1, -1, -1).contiguous()  # [B, 3, L, M]
    x1 = x[0].clone()
    fns = {
        "ours_rk4": lambda: rk4.advance(x, steps * dt),
        "ours_ab3": lambda: ab3.advance(x, steps * dt),
    }
    if batch == 1:  # theirs takes one state [3, L, M]
        fns["theirs_ab3"] = lambda: theirs.timestep(x1, steps)
    with torch.no_grad():
        res = time_interleaved(fns, repeats=repeats, min_seconds=min_seconds, device=device)
    row = {"nlat": nlat, "nlon": nlon, "batch": batch, "lmax": lmax}
    for name, r in res.items():
        row[name] = 1e3 * r["median"] / steps
    return row


def _table(rows: list[dict]) -> str:
    lines = [
        "| grid | lmax | batch | ours RK4 ms/step | ours AB3 ms/step | torch-harmonics AB3 ms/step | "
        "ours AB3 / theirs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        theirs = r.get("theirs_ab3")
        t = f"{theirs:.2f}" if theirs else "-"
        ratio = f"{r['ours_ab3'] / theirs:.2f}" if theirs else "-"
        lines.append(
            f"| {r['nlat']}x{r['nlon']} | {r['lmax']} | {r['batch']} | {r['ours_rk4']:.2f} | "
            f"{r['ours_ab3']:.2f} | {t} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="nlat (nlon = 2 nlat)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=4, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="16x32 and 32x64, one round: a smoke test")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md",
        help="markdown file to update; '-' to only print",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.repeats, args.min_seconds, args.steps = [16, 32], [1], 1, 0.0, 1
    tuned = tune_cpu_allocator()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    load_before, t0 = load_average(), time.perf_counter()
    rows = []
    for n in args.sizes:
        for b in args.batches:
            r = bench_one(
                n,
                b,
                steps=args.steps,
                repeats=args.repeats,
                min_seconds=args.min_seconds,
                device=device,
                dtype=dtype,
            )
            rows.append(r)
            print(
                f"{n}x{2 * n} batch {b}: ours rk4 {r['ours_rk4']:.2f} ms/step, ab3 {r['ours_ab3']:.2f}, "
                f"theirs {r.get('theirs_ab3', float('nan')):.2f}",
                flush=True,
            )
    table = _table(rows)
    command = "python scripts/bench_swe.py" + (" --quick" if args.quick else "")
    command += f" --device {args.device}" if args.device != "cpu" else ""
    command += f" --dtype {args.dtype}" if args.dtype != "float32" else ""
    section = (
        f"## Shallow water on the sphere ({device.type}, {args.dtype})\n\n"
        f"`{command}` on {describe_machine(device)} ({time.perf_counter() - t0:.0f} s in all; 1-minute load "
        f"average {load_before} before, {load_average()} after: the cores were shared). Galewsky case, "
        "dt = 600 s x 128 / nlat, lmax = ceil(nlat / 3); medians of "
        f"{args.repeats} interleaved rounds (sim.runtime.time_interleaved), each of at least "
        f"{args.min_seconds:g} s. Ours: `sim.solvers.swe.ShallowWaterSphere` (RK4: 4 tendencies a step; AB3: "
        "1, as torch-harmonics' `ShallowWaterSolver`, which takes one state, so no batched figure). "
        f"CPU allocator tuned: {'yes' if tuned else 'no'}.\n\n" + table + "\n"
    )
    publish_section(args.out, "bench_swe", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
