#!/usr/bin/env python
"""Benchmark: NavierStokes2D steps per second, against the FFTs a step needs (the floor), side by side.

A CN-Heun step makes two advection evaluations, each one batched inverse real FFT of 4 fields
(u, v, w_x, w_y) and one forward real FFT of the product. The reference times exactly those FFT calls
on tensors of the same shapes, in the same process, interleaved with the solver runs; the ratio
step / FFTs says how much the rest of the step (products, the update, the finiteness check) costs.
Goal: at most 2.

    python scripts/bench_ns2d.py                       # CPU, float32, 64/128/256, batch 1 and 32
    python scripts/bench_ns2d.py --device cuda --out docs/benchmarks.md

Writes its table into docs/benchmarks.md between the markers of this benchmark (other sections stay).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.io import write_markdown_section  # noqa: E402
from sim.runtime import describe_machine, tune_cpu_allocator  # noqa: E402
from sim.solvers import NavierStokes2D, gaussian_random_field, sample_seed, vorticity_forcing  # noqa: E402

START, END = "<!-- bench_ns2d:start -->", "<!-- bench_ns2d:end -->"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench_one(
    n: int,
    batch: int,
    *,
    steps: int,
    repeats: int,
    device: torch.device,
    dtype: torch.dtype,
    min_seconds: float = 0.2,
) -> dict:
    """Median seconds per solver step and per step's worth of FFTs, measured alternately."""
    dt = 1e-4
    solver = NavierStokes2D(resolution=n, viscosity=1e-3, dt=dt).to(device)
    w = gaussian_random_field(n, [sample_seed(0, i) for i in range(batch)], dtype=dtype, device=device)
    f = vorticity_forcing("fno", solver.grid, dtype=dtype, device=device)
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    spec4 = torch.randn(4, batch, n, n // 2 + 1, dtype=cdtype, device=device)  # [4, B, n, n//2+1]
    field = torch.randn(batch, n, n, dtype=dtype, device=device)  # [B, n, n]

    def run_solver():
        solver.advance(w, steps * dt, forcing=f)

    def run_ffts():
        for _ in range(steps):
            for _ in range(2):  # two advection evaluations per step
                torch.fft.irfft2(spec4, s=(n, n))
                torch.fft.rfft2(field)

    # Warm up (FFT plans, allocator), then time runs of at least min_seconds each.
    per_step = _time(run_solver, device) / steps
    run_ffts()
    steps = max(steps, min(5000, math.ceil(min_seconds / per_step)))
    t_step, t_fft = [], []
    for _ in range(repeats):
        t_step.append(_time(run_solver, device) / steps)
        t_fft.append(_time(run_ffts, device) / steps)
    step, fft = statistics.median(t_step), statistics.median(t_fft)
    return {
        "n": n,
        "batch": batch,
        "step_ms": 1e3 * step,
        "fft_ms": 1e3 * fft,
        "steps_per_s": 1 / step,
        "ratio": step / fft,
    }


def _table(rows: list[dict]) -> str:
    lines = [
        "| resolution | batch | steps/s | ms/step | FFT floor ms/step | step / FFT floor | FFT share |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']}² | {r['batch']} | {r['steps_per_s']:.1f} | {r['step_ms']:.3f} | {r['fft_ms']:.3f} | "
            f"{r['ratio']:.2f} | {100 / r['ratio']:.0f}% |"
        )
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it), atomically."""
    write_markdown_section(path, "bench_ns2d", section)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--steps", type=int, default=10, help="least solver steps per timed run")
    parser.add_argument("--min-seconds", type=float, default=0.2, help="least duration of a timed run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (the median is reported)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md",
        help="markdown file to update; '-' to only print",
    )
    parser.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="leave glibc malloc as it is (the sim command tunes it: see sim.runtime.tune_cpu_allocator)",
    )
    args = parser.parse_args(argv)
    tuned = False if args.no_tune_allocator else tune_cpu_allocator()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    rows = []
    for n in args.sizes:
        for b in args.batches:
            r = bench_one(
                n,
                b,
                steps=args.steps,
                repeats=args.repeats,
                device=device,
                dtype=dtype,
                min_seconds=args.min_seconds,
            )
            rows.append(r)
            print(
                f"n={n:4d} batch={b:3d}: {r['steps_per_s']:9.1f} steps/s, {r['step_ms']:8.3f} ms/step, "
                f"FFTs {r['fft_ms']:8.3f} ms, ratio {r['ratio']:.2f}",
                flush=True,
            )
    table = _table(rows)
    command = (
        "python scripts/bench_ns2d.py"
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + (f" --dtype {args.dtype}" if args.dtype != "float32" else "")
        + (" --no-tune-allocator" if args.no_tune_allocator else "")
    )
    section = (
        f"## 2D Navier-Stokes solver ({device.type}, {args.dtype})\n\n"
        f"`{command}` on {describe_machine(device)}. Median of {args.repeats} runs, each of at least "
        f"{args.steps} steps and {args.min_seconds:g} s. "
        "The FFT floor is the same FFT calls a CN-Heun step makes (2 x [irfft2 of 4 fields + rfft2 of 1]), "
        "timed alternately with the solver in the same process. Goal: step / FFT floor <= 2. "
        f"CPU allocator tuned as the `sim` command does it: {'yes' if tuned else 'no'}.\n\n" + table + "\n"
    )
    print("\n" + table)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_section(args.out, section)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
