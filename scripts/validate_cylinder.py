#!/usr/bin/env python
"""Validation: the lattice-Boltzmann cylinder solver (sim/solvers/cylinder.py) against Schäfer & Turek's
(1996) benchmark 2D-2 (channel 2.2 x 0.41, cylinder D = 0.1 at (0.2, 0.2), Re = 100, periodic shedding).

Targets (the range of the benchmark's reference results): max C_D 3.22-3.24, max C_L 0.99-1.01,
St 0.295-0.305, and the pressure difference between the cylinder's front and back points half a period
after the lift maximum, 2.46-2.50. Each resolution runs from the start to ``--t-end`` with a start-up spin
of the cylinder (``--kick``, which only shortens the transient) and is measured over its last ``--periods``
whole lift periods; the table gives the resolution sweep, the verdicts are for the finest resolution.

    python scripts/validate_cylinder.py                                   # 40 cells per D; docs/results.md
    python scripts/validate_cylinder.py --resolutions 20,30,40,60 --dtype float32 --out -   # a sweep
    python scripts/validate_cylinder.py --magic 0.02 --resolutions 20,30,40 --out -  # at a fixed Lambda
    python scripts/validate_cylinder.py --quick --out -                   # smoke run (8 cells per D, seconds)

Cost on one CPU core for 7 s of flow: float32 ~40 s at 20 cells per D, ~8x that per doubling of the
resolution (twice the steps on four times the nodes); float64 is 2-3x slower. (Benchmark quantities
agree between the two to 2e-5.)
Writes a figure of C_D and C_L against time (``--figure``) and the ``validate_cylinder`` section of
docs/results.md (``--out``; ``-`` prints only).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.io import atomic_output, publish_section  # noqa: E402
from sim.runtime import describe_machine, load_average, tune_cpu_allocator  # noqa: E402
from sim.solvers.cylinder import (  # noqa: E402
    SCHAFER_TUREK_2D2,
    CylinderFlow,
    benchmark_quantities,
    simulate,
)

NAME = "validate_cylinder"
QUANTITIES = (  # key, label, decimals of the values, decimals of the target range
    ("drag_max", "max C_D", 4, 2),
    ("lift_max", "max C_L", 4, 2),
    ("strouhal", "St", 4, 3),
    ("delta_p", "Δp", 4, 2),
)
QUICK = dict(resolutions=[8.0], t_end=2.0, u_lattice=0.1, kick_time=0.5, periods=2)


def parse_resolutions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--resolutions: expected numbers like 20,40, got {text!r}"
        ) from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--resolutions: expected positive numbers, got {text!r}")
    return values


def run_one(cells: float, args, progress: bool) -> dict:
    """Simulate one resolution; return the row of the table and the signals for the figure."""
    flow = CylinderFlow()
    bar = None
    callback = None
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:  # plain progress lines
            last = [-1]

            def callback(t, t_end):
                pct = int(100 * t / t_end)
                if pct // 10 > last[0]:
                    last[0] = pct // 10
                    print(f"  {cells:g} cells per D: t = {t:.2f} / {t_end:.2f}", flush=True)
        else:
            bar = tqdm(
                total=round(args.t_end, 6),
                desc=f"{cells:g} cells per D",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| t = {n:.2f} of {total:g} "
                "[{elapsed}<{remaining}]",
                leave=False,
            )

            def callback(t, t_end):
                bar.update(round(t, 6) - bar.n)

    t0 = time.perf_counter()
    try:
        result = simulate(
            flow,
            cells_per_diameter=cells,
            t_end=args.t_end,
            u_lattice=args.u_lattice,
            magic=args.magic,
            kick=args.kick,
            kick_time=args.kick_time,
            dtype=getattr(torch, args.dtype),
            progress=callback,
        )
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    try:
        q = benchmark_quantities(result, periods=args.periods)
        values = {key: getattr(q, key) for key, *_ in QUANTITIES}
        window = f"{q.t_from:.2f}–{q.t_to:.2f}"
        spread = q.lift_max_spread
    except ValueError as e:  # no shedding (yet)
        print(f"  {cells:g} cells per D: {e}", flush=True)
        values, window, spread = dict.fromkeys((k for k, *_ in QUANTITIES), None), "—", None
    lat = result.lattice
    return {
        "cells": lat.cells_per_diameter,
        "grid": (lat.nx, lat.ny),
        "tau": lat.tau,
        "magic": lat.magic,
        "steps": result.steps,
        "mlups": result.mlups,
        "wall": wall,
        "window": window,
        "spread": spread,
        **values,
        "signals": (result.times.numpy(), result.drag.numpy(), result.lift.numpy()),
    }


def table(rows: list[dict]) -> str:
    head = "| cells per D | grid | τ | Λ | " + " | ".join(label for _, label, *_ in QUANTITIES)
    head += " | window (s) | MLUPS | wall time |"
    lines = [head, "|---:|---|---:|---:|" + "---:|" * len(QUANTITIES) + "---|---:|---:|"]
    target = "| target | | | | " + " | ".join(
        f"{_range(SCHAFER_TUREK_2D2[k], d)}" for k, _, _, d in QUANTITIES
    )
    for r in rows:
        cells = [f"{r[k]:.{d}f}" if r[k] is not None else "—" for k, _, d, _ in QUANTITIES]
        lines.append(
            f"| {r['cells']:.3g} | {r['grid'][0]}×{r['grid'][1]} | {r['tau']:.4f} | {r['magic']:.4f} | "
            + " | ".join(cells)
            + f" | {r['window']} | {r['mlups']:.2f} | {_duration(r['wall'])} |"
        )
    lines.append(target + " | | | |")
    return "\n".join(lines)


def _range(bounds: tuple[float, float], decimals: int) -> str:
    return f"{bounds[0]:.{decimals}f}–{bounds[1]:.{decimals}f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def verdicts(row: dict) -> list[str]:
    """One line per quantity: met, or not met with the distance to the target range."""
    out = []
    for key, label, d, dr in QUANTITIES:
        lo, hi = SCHAFER_TUREK_2D2[key]
        value = row[key]
        if value is None:
            out.append(f"- {label}: not measured (no periodic shedding in the run)")
        elif lo <= value <= hi:
            out.append(f"- {label} = {value:.{d}f}: met ({_range((lo, hi), dr)})")
        else:
            off = (value - hi) / hi if value > hi else (value - lo) / lo
            out.append(
                f"- {label} = {value:.{d}f}: NOT met ({_range((lo, hi), dr)}; "
                f"{100 * off:+.1f}% from the range)"
            )
    return out


def figure(rows: list[dict], path: Path) -> None:
    """C_D and C_L against time for every resolution (left: the whole run; right: its last second), the
    target ranges of the maxima shaded; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 6), sharex="col", gridspec_kw={"width_ratios": [2, 1]})
    late_drag, late_lift = [], []
    for r in rows:
        t, drag, lift = r["signals"]
        step = max(1, len(t) // 20000)
        late = t >= t[-1] / 2
        late_drag.append(drag[late])
        late_lift.append(lift[late])
        last = t >= t[-1] - 1.0
        label = f"{r['cells']:.3g} cells per D"
        for col, sel, stride in ((0, slice(None), step), (1, last, 1)):
            axes[0, col].plot(t[sel][::stride], drag[sel][::stride], lw=0.8, label=label)
            axes[1, col].plot(t[sel][::stride], lift[sel][::stride], lw=0.8, label=label)
    lo = min(min(d.min() for d in late_drag), SCHAFER_TUREK_2D2["drag_max"][0])
    hi = max(max(d.max() for d in late_drag), SCHAFER_TUREK_2D2["drag_max"][1])
    amp = max(max(abs(v).max() for v in late_lift), SCHAFER_TUREK_2D2["lift_max"][1])
    for col in (0, 1):
        axes[0, col].axhspan(*SCHAFER_TUREK_2D2["drag_max"], color="0.8", label="benchmark max C_D")
        axes[1, col].axhspan(*SCHAFER_TUREK_2D2["lift_max"], color="0.8", label="benchmark max C_L")
        axes[0, col].set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
        axes[1, col].set_ylim(-1.15 * amp, 1.15 * amp)
        axes[1, col].set_xlabel("t")
    axes[0, 0].set_ylabel("C_D")
    axes[1, 0].set_ylabel("C_L")
    axes[0, 1].set_title("the last second")
    axes[0, 0].set_title("Schäfer–Turek 2D-2 (Re = 100): lattice Boltzmann, D2Q9 MRT")
    axes[1, 1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--resolutions", type=parse_resolutions, default=[40.0], help="cells per diameter, e.g. 20,40"
    )
    parser.add_argument("--t-end", type=float, default=7.0, help="simulated time per resolution (default 7)")
    parser.add_argument(
        "--u-lattice", type=float, default=0.05, help="mean inflow in lattice units (Mach 2.6x it)"
    )
    parser.add_argument(
        "--kick", type=float, default=1.0, help="start-up spin, surface speed / U_mean (0: none)"
    )
    parser.add_argument("--kick-time", type=float, default=0.6, help="duration of the spin")
    parser.add_argument("--periods", type=int, default=5, help="lift periods at the end to measure over")
    parser.add_argument(
        "--magic",
        type=float,
        default=None,
        help="fix the TRT/MRT parameter Lambda (the odd rate follows tau) instead of the odd rate 1.2",
    )
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (8 cells per D, 2 s): for tests")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--figure",
        type=Path,
        default=ROOT / "docs" / "figures" / "cylinder_validation.png",
        help="PNG of C_D and C_L against time (replaced if it exists)",
    )
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "results.md"), help="markdown file to update; '-' to only print"
    )
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    load_before = load_average()
    rows = []
    for cells in args.resolutions:
        row = run_one(cells, args, progress=not args.no_progress)
        rows.append(row)
        values = ", ".join(
            f"{label} {row[k]:.4f}" if row[k] is not None else f"{label} —" for k, label, *_ in QUANTITIES
        )
        print(
            f"{row['cells']:.3g} cells per D ({row['grid'][0]}x{row['grid'][1]}, {row['steps']} steps): "
            f"{values}; {row['mlups']:.2f} MLUPS, {_duration(row['wall'])}",
            flush=True,
        )
    finest = max(rows, key=lambda r: r["cells"])
    lines = verdicts(finest)
    met = all("NOT" not in line and "not measured" not in line for line in lines)
    figure(rows, args.figure)
    command = "python scripts/validate_cylinder.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    section = (
        "## Flow past a cylinder: lattice Boltzmann vs Schäfer–Turek 2D-2\n\n"
        f"`{command.strip()}` on {describe_machine()} ({args.dtype}; 1-minute load average {load_before} "
        f"before, {load_average()} after). D2Q9 MRT lattice Boltzmann (sim/solvers/cylinder.py: "
        "Bouzidi interpolated bounce-back on the cylinder, half-way bounce-back walls, velocity bounce-back "
        "inlet, constant-pressure non-equilibrium-extrapolation outlet, momentum-exchange forces), "
        f"u_lattice = {args.u_lattice:g} (Mach {1.5 * 3**0.5 * args.u_lattice:.2f} at U_max), "
        + (
            f"Λ = {args.magic:g} at every resolution, "
            if args.magic is not None
            else "odd rate 1.2 (Λ = (τ − ½)/3), "
        )
        + f"simulated to t = {args.t_end:g} with a start-up spin of the cylinder (kick {args.kick:g} U_mean "
        f"over {args.kick_time:g}); the quantities are taken over the last {args.periods} whole lift periods "
        "(window), Δp = p(0.15, 0.2) − p(0.25, 0.2) half a period after the lift maximum. MLUPS: million "
        "lattice-node updates per second of the time loop.\n\n"
        + table(rows)
        + f"\n\nVerdicts at {finest['cells']:.3g} cells per diameter "
        + ("(all met):" if met else "(not all met):")
        + "\n\n"
        + "\n".join(lines)
        + "\n"
    )
    publish_section(args.out, NAME, section, title="Results")
    print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
