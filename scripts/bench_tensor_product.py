#!/usr/bin/env python
"""Benchmark: our fully connected tensor product against e3nn's ``FullyConnectedTensorProduct``.

The product ``16x0e + 16x1o + 16x2e  x  0e + 1o + 2e  ->  16x0e + 16x1o + 16x2e`` (11 paths, 2816
weights) on ``--edges`` edges (node features times the edge spherical harmonics, as in a NequIP layer):

1. **Speed.** Forward + backward (gradients of the features and the weights), with shared weights (the
   headline) and with per-edge weights (from a radial MLP), ours and e3nn timed alternately in the same
   process (:func:`sim.runtime.time_interleaved`, medians of the rounds). Goal: no slower than e3nn
   (stretch: 1.5x faster).
2. **Equivariance error** ``max |f(D x1, D x2) - D f(x1, x2)| / max |f|`` over random rotations and
   improper rotations, float32 and float64, both layers measured with our exact Wigner-D (carried into
   e3nn's basis by the documented change of basis), and e3nn also with its own ``D_from_matrix``.

    python scripts/bench_tensor_product.py            # CPU; writes its section of docs/benchmarks.md
    python scripts/bench_tensor_product.py --out -    # print only
    python scripts/bench_tensor_product.py --quick    # tiny sizes (the smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.groups.so3 import Irreps, random_rotation, spherical_harmonics  # noqa: E402
from sim.io import publish_section  # noqa: E402
from sim.nn.tensor_product import TensorProduct  # noqa: E402
from sim.runtime import describe_machine, time_interleaved  # noqa: E402

SECTION = "bench_tensor_product"
IRREPS = ("16x0e + 16x1o + 16x2e", "0e + 1o + 2e", "16x0e + 16x1o + 16x2e")
E3NN_MISSING = "e3nn not installed"
NOISY = ": other jobs shared the 2 cores, so the times are noisy"


def _load_e3nn():
    """``e3nn.o3``, or None when e3nn is not installed (the package never imports it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from e3nn import o3
    except ImportError:
        return None
    return o3


def _basis_change(o3, lmax: int) -> dict[int, torch.Tensor]:
    """``B_l [2l+1, 2l+1]`` float64 with ``Y_ours(x) = B_l Y_e3nn(x)`` (least squares on 200 points)."""
    x = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return {
        l: torch.linalg.lstsq(
            o3.spherical_harmonics(l, x, normalize=True, normalization="component"), spherical_harmonics(l, x)
        ).solution.T
        for l in range(lmax + 1)
    }


def _to_ours(irreps: Irreps, basis: dict[int, torch.Tensor]) -> torch.Tensor:
    """``[dim, dim]``: e3nn-basis features ``x`` are ``x @ M.T`` in ours."""
    return torch.block_diag(*[basis[e.l] for e in irreps for _ in range(e.mul)])


def _modules(o3, *, shared: bool, dtype: torch.dtype):
    ours = TensorProduct(*IRREPS, shared_weights=shared).to(dtype)
    theirs = None
    if o3 is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = o3.FullyConnectedTensorProduct(*IRREPS, shared_weights=shared).to(dtype)
    return ours, theirs


def _inputs(edges: int, numel: int, *, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    dim1 = Irreps(IRREPS[0]).dim
    x1 = torch.randn(edges, dim1, dtype=dtype, generator=g)
    vec = torch.randn(edges, 3, dtype=dtype, generator=g)
    x2 = torch.cat([spherical_harmonics(l, vec) for l in range(3)], dim=-1)  # [E, 9]
    w = torch.randn(edges, numel, dtype=dtype, generator=g)
    return x1, x2, w


def bench_speed(
    o3, *, edges: int, shared: bool, repeats: int, min_seconds: float, max_extra_rounds: int | None = None
) -> dict:
    """Forward + backward median milliseconds of ours (and e3nn), float32."""
    ours, theirs = _modules(o3, shared=shared, dtype=torch.float32)
    x1, x2, w = _inputs(edges, ours.weight_numel, dtype=torch.float32)
    x1.requires_grad_(True)
    w.requires_grad_(not shared)

    def step(module):
        def fn():
            y = module(x1, x2) if shared else module(x1, x2, w)
            y.backward(torch.ones_like(y))

        return fn

    fns = {"ours": step(ours)}
    if theirs is not None:
        fns["e3nn"] = step(theirs)
    times = time_interleaved(fns, repeats=repeats, min_seconds=min_seconds, max_extra_rounds=max_extra_rounds)
    ms = {k: v["median"] * 1e3 for k, v in times.items()}
    return {
        "shared": shared,
        "edges": edges,
        "ms": ms,
        "clean": {k: f"{v['clean']}/{v['rounds']}" for k, v in times.items()},
        "speedup": ms["e3nn"] / ms["ours"] if "e3nn" in ms else None,
    }


def equivariance(o3, *, dtype: torch.dtype, edges: int = 64, trials: int = 4) -> dict:
    """Worst relative equivariance error over random rotations and improper rotations."""
    ir1, ir2, ir3 = (Irreps(s) for s in IRREPS)
    ours, theirs = _modules(o3, shared=True, dtype=dtype)
    x1, x2, _ = _inputs(edges, ours.weight_numel, dtype=dtype, seed=2)
    gs = [random_rotation(dtype=torch.float64) for _ in range(trials)]
    gs += [-random_rotation(dtype=torch.float64) for _ in range(trials)]

    def error(f, d1, d2, d3) -> float:
        with torch.no_grad():
            out = f(x1, x2)
            moved = f(x1 @ d1.T.to(dtype), x2 @ d2.T.to(dtype))
            return float((moved - out @ d3.T.to(dtype)).abs().max() / out.abs().max())

    result = {"ours": max(error(ours, ir1.D(g), ir2.D(g), ir3.D(g)) for g in gs)}
    if theirs is not None:
        basis = _basis_change(o3, 2)
        m = [_to_ours(ir, basis) for ir in (ir1, ir2, ir3)]

        def in_e3nn(ir, mat, g):  # our exact D carried into e3nn's basis
            return torch.linalg.solve(mat, ir.D(g) @ mat)

        result["e3nn"] = max(
            error(theirs, *(in_e3nn(ir, mat, g) for ir, mat in zip((ir1, ir2, ir3), m, strict=True)))
            for g in gs
        )
        own = [o3.Irreps(s) for s in IRREPS]
        result["e3nn_own_D"] = max(error(theirs, *(ir.D_from_matrix(g) for ir in own)) for g in gs)
    return result


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def report(
    speed: list[dict], equiv: dict, *, command: str, seconds: float, load: tuple, e3nn: bool, trials: int = 4
) -> str:
    lines = [
        "## Tensor product (SO(3)/O(3)): ours vs e3nn",
        "",
        f"`{command}` on {describe_machine()}; {seconds:.0f} s in all (1-minute load average {load[0]:.2f} "
        f"before, {load[1]:.2f} after{NOISY if max(load) > 1.2 else ''}).",
        f"Product `{IRREPS[0]} x {IRREPS[1]} -> {IRREPS[2]}` (11 paths, 2816 weights), float32, forward + "
        "backward (gradients of the node features and the weights), ours and e3nn's "
        "`FullyConnectedTensorProduct` timed alternately in one process, medians of the clean rounds (of all "
        "rounds when fewer than 3 were clean). "
        "Goal: no slower than e3nn (stretch 1.5x faster).",
        "",
    ]
    if not e3nn:
        lines += [f"e3nn: {E3NN_MISSING}; only our times.", ""]
    lines += [
        "| weights | edges | ours (ms) | e3nn (ms) | e3nn / ours | clean rounds |",
        "|---|---|---|---|---|---|",
    ]
    for row in speed:
        ms = row["ms"]
        clean = ", ".join(f"{k} {v}" for k, v in row["clean"].items())
        lines.append(
            f"| {'shared' if row['shared'] else 'per edge'} | {row['edges']} | {ms['ours']:.1f} | "
            f"{'–' if 'e3nn' not in ms else format(ms['e3nn'], '.1f')} | {_fmt(row['speedup'])} | {clean} |"
        )
    lines += [
        "",
        "Equivariance error `max |f(D x1, D x2) - D f(x1, x2)| / max |f|`, worst of "
        f"{trials} random rotations and {trials} improper rotations, 64 edges. Both layers are measured with "
        "our Wigner-D (exact to ~1e-15, carried into e3nn's basis by the documented change of basis); "
        "e3nn also with its own `D_from_matrix`.",
        "",
        "| dtype | ours | e3nn (our D) | e3nn (its D) |",
        "|---|---|---|---|",
    ]
    for dtype, row in equiv.items():
        lines.append(
            f"| {dtype} | {_fmt(row['ours'])} | {_fmt(row.get('e3nn'))} | {_fmt(row.get('e3nn_own_D'))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: 200 edges, 1 round")
    parser.add_argument("--skip-e3nn", action="store_true")
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file, or - to print"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.edges, args.repeats, args.min_seconds = 200, 1, 0.0
    command = "python scripts/bench_tensor_product.py" + ("" if argv is None else " " + " ".join(argv))
    if argv is None and len(sys.argv) > 1:
        command += " " + " ".join(sys.argv[1:])
    o3 = None if args.skip_e3nn else _load_e3nn()
    if o3 is None:
        print("skipped (--skip-e3nn)" if args.skip_e3nn else E3NN_MISSING)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    speed = [
        bench_speed(
            o3,
            edges=args.edges,
            shared=shared,
            repeats=args.repeats,
            min_seconds=args.min_seconds,
            max_extra_rounds=0 if args.quick else None,
        )
        for shared in (True, False)
    ]
    trials = 1 if args.quick else 4
    equiv = {
        str(dt).removeprefix("torch."): equivariance(o3, dtype=dt, trials=trials)
        for dt in (torch.float32, torch.float64)
    }
    text = report(
        speed,
        equiv,
        command=command,
        seconds=time.perf_counter() - t0,
        load=(load0, os.getloadavg()[0]),
        e3nn=o3 is not None,
        trials=trials,
    )
    publish_section(args.out, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
