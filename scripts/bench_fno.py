#!/usr/bin/env python
"""Benchmark: our FNO-2D (``sim.models.FNO2d``) against neuraloperator's ``FNO`` (the ``bench`` extra).

1. **Parity.** neuraloperator's FNO configured like ours (no positional embedding, no channel MLP, a
   one-layer lifting, a 128-channel projection, ``n_modes = (2 m, 2 m - 2)`` so it keeps the same
   ``|k_y| < m``, ``0 <= k_x < m`` modes) has the same parameters, shape for shape. With our weights
   copied into it: the spectral convolution alone, a one-layer model, and the four-layer model with the
   activation replaced by the identity must give the same output to float32 rounding. (The four-layer
   models with GELU differ by design: neuraloperator 2.0 applies the activation twice per block when
   ``use_channel_mlp=False``.)
2. **Speed.** A training step (forward + backward) and an eval forward (``torch.no_grad()``) of both at
   64^2, timed alternately in one process (``sim.runtime.time_interleaved``), medians; at the study's
   width (parameter-matched to the P4M G-CNN, ``configs/ns2d/fno.yaml``) and at the FNO paper's width 20.

    python scripts/bench_fno.py                 # CPU; writes its section of docs/benchmarks.md
    python scripts/bench_fno.py --out -         # print only
    python scripts/bench_fno.py --device cuda

Needs ``pip install -e .[bench]`` (neuraloperator); the core package never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.io import publish_section  # noqa: E402
from sim.models import FNO2d, SpectralConv2d, build_model, count_parameters  # noqa: E402
from sim.runtime import describe_machine, time_interleaved, tune_cpu_allocator  # noqa: E402

SECTION = "bench_fno"
MISSING = "neuraloperator is not installed (pip install -e .[bench])"


def load_neuralop():
    """The ``neuralop`` module, or None when it is not installed."""
    try:
        import neuralop
    except ImportError:
        return None
    return neuralop


def neuralop_fno(neuralop, *, in_channels: int, out_channels: int, width: int, modes: int, layers: int):
    """neuraloperator's FNO configured to match ``FNO2d(width, modes, layers)`` parameter for parameter."""
    return neuralop.models.FNO(
        n_modes=(2 * modes, 2 * modes - 2),  # keeps |k_y| < modes and 0 <= k_x < modes (rfft axis)
        in_channels=in_channels,
        out_channels=out_channels,
        hidden_channels=width,
        n_layers=layers,
        positional_embedding=None,
        use_channel_mlp=False,
        lifting_channel_ratio=0,  # a single 1x1 lifting layer
        projection_channel_ratio=128 / width,  # width -> 128 -> out, as ours
    )


def neuralop_spectral_weight(conv: SpectralConv2d) -> torch.Tensor:
    """Our ``[2, in, out, m, m, 2]`` real storage as neuraloperator's ``[in, out, 2m, m]`` complex weight.

    neuraloperator stores the kept ``k_y`` in fftshift order (``-m .. m-1``): our negative half first.
    """
    w = torch.view_as_complex(conv.weight.detach().contiguous())  # [2, in, out, m, m]
    return torch.cat([w[1], w[0]], dim=2)  # [in, out, 2m, m]


@torch.no_grad()
def copy_weights(ours: FNO2d, theirs: nn.Module) -> None:
    """Load our FNO2d's weights into a :func:`neuralop_fno` of the same size."""
    theirs.lifting.fcs[0].weight.copy_(ours.lift.weight[..., 0])  # [width, in, 1]
    theirs.lifting.fcs[0].bias.copy_(ours.lift.bias)
    for i, (spec, point) in enumerate(zip(ours.spectral, ours.pointwise, strict=True)):
        theirs.fno_blocks.convs[i].weight.tensor.copy_(neuralop_spectral_weight(spec))
        theirs.fno_blocks.convs[i].bias.copy_(point.bias[:, None, None])  # [width, 1, 1]
        theirs.fno_blocks.fno_skips[i].conv.weight.copy_(point.weight[..., 0])  # [width, width, 1]
    for k, j in ((0, 0), (1, 2)):
        theirs.projection.fcs[k].weight.copy_(ours.project[j].weight[..., 0])
        theirs.projection.fcs[k].bias.copy_(ours.project[j].bias)


def _params(module: nn.Module) -> int:
    """Real parameters (a complex one counts twice), as ``count_parameters``."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def parity(neuralop, *, width: int, modes: int = 12, size: int = 64, seed: int = 0) -> dict:
    """Relative output differences with copied weights, and the parameter counts of both."""
    torch.manual_seed(seed)
    x = torch.randn(2, 5, size, size)
    conv = SpectralConv2d(width, width, modes)
    their_conv = neuralop.layers.spectral_convolution.SpectralConv(
        width, width, n_modes=(2 * modes, 2 * modes - 2), bias=False
    )
    with torch.no_grad():
        their_conv.weight.tensor.copy_(neuralop_spectral_weight(conv))
        h = torch.randn(2, width, size, size)
        spectral = _rel(conv(h), their_conv(h))
    out = {"spectral": spectral}
    for name, layers, identity in (("one_layer", 1, False), ("four_layers_identity", 4, True)):
        ours = FNO2d(
            in_fields="5x pseudoscalar", out_fields="1x pseudoscalar", width=width, modes=modes, layers=layers
        )
        theirs = neuralop_fno(
            neuralop, in_channels=5, out_channels=1, width=width, modes=modes, layers=layers
        )
        if identity:
            ours.act = nn.Identity()
            theirs.fno_blocks.non_linearity = lambda t: t
        copy_weights(ours, theirs)
        with torch.no_grad():
            a, b = ours(x), theirs(x)
        out[name] = _rel(a, b)
        out["shapes_equal"] = out.get("shapes_equal", True) and tuple(a.shape) == tuple(b.shape)
    ours = FNO2d(
        in_fields="5x pseudoscalar", out_fields="1x pseudoscalar", width=width, modes=modes, layers=4
    )
    theirs = neuralop_fno(neuralop, in_channels=5, out_channels=1, width=width, modes=modes, layers=4)
    out["params_ours"], out["params_theirs"] = count_parameters(ours), _params(theirs)
    return out


def speed(
    neuralop,
    *,
    width: int,
    modes: int = 12,
    size: int = 64,
    train_batch: int = 16,
    eval_batches=(1, 32),
    repeats: int = 7,
    min_seconds: float = 0.2,
    device="cpu",
) -> list[dict]:
    """Median seconds of a training step and of eval forwards, ours and neuraloperator's, side by side."""
    device = torch.device(device)
    torch.manual_seed(0)
    ours = FNO2d(in_fields="5x pseudoscalar", out_fields="1x pseudoscalar", width=width, modes=modes).to(
        device
    )
    theirs = neuralop_fno(neuralop, in_channels=5, out_channels=1, width=width, modes=modes, layers=4)
    theirs = theirs.to(device)
    rows = []
    x = torch.randn(train_batch, 5, size, size, device=device)
    y = torch.randn(train_batch, 1, size, size, device=device)

    def train_step(model):
        def step():
            loss = (model(x) - y).square().mean()
            torch.autograd.grad(loss, list(model.parameters()))

        return step

    t = time_interleaved(
        {"ours": train_step(ours), "theirs": train_step(theirs)},
        repeats=repeats,
        min_seconds=min_seconds,
        device=device,
    )
    rows.append({"what": f"training step, batch {train_batch}", "width": width, **_ratio(t)})
    for b in eval_batches:
        xb = torch.randn(b, 5, size, size, device=device)

        def forward(model, xb=xb):
            def run():
                with torch.no_grad():
                    model(xb)

            return run

        t = time_interleaved(
            {"ours": forward(ours), "theirs": forward(theirs)},
            repeats=repeats,
            min_seconds=min_seconds,
            device=device,
        )
        rows.append({"what": f"eval forward, batch {b}", "width": width, **_ratio(t)})
    return rows


def _ratio(t: dict) -> dict:
    return {
        "ours_ms": 1e3 * t["ours"]["median"],
        "theirs_ms": 1e3 * t["theirs"]["median"],
        "ratio": t["ours"]["median"] / t["theirs"]["median"],
        "clean": f"{t['ours']['clean']}/{t['ours']['rounds']}",
    }


def study_width() -> int:
    """The width of the study's parameter-matched FNO (``configs/ns2d/fno.yaml``)."""
    return int(build_model(ROOT / "configs" / "ns2d" / "fno.yaml").width)


def format_section(
    par: list[dict], rows: list[dict], *, machine: str, version: str, seconds: float, command: str
) -> str:
    lines = [
        "## FNO-2D: ours against neuraloperator",
        "",
        f"`{command}` on {machine}, neuraloperator {version}; {seconds:.0f} s in all.",
        "",
        "**Parity.** neuraloperator's `FNO` configured as ours (`scripts/bench_fno.py: neuralop_fno`), our "
        "weights copied in; relative L2 difference of the outputs on random 64^2 inputs (float32), and "
        "the parameter counts (complex weights count twice).",
        "",
        "| width | spectral conv | 1-layer model | 4 layers, identity activation | shapes | params ours | "
        "params neuraloperator |",
        "|---:|---:|---:|---:|:--:|---:|---:|",
    ]
    for p in par:
        lines.append(
            f"| {p['width']} | {p['spectral']:.1e} | {p['one_layer']:.1e} | "
            f"{p['four_layers_identity']:.1e} | "
            f"{'equal' if p['shapes_equal'] else 'DIFFER'} | {p['params_ours']:,} | {p['params_theirs']:,} |"
        )
    lines += [
        "",
        "With GELU the four-layer outputs differ by design: neuraloperator 2.0 applies the activation twice "
        "per Fourier block when `use_channel_mlp=False` (`FNOBlocks.forward_with_postactivation`).",
        "",
        "**Speed** at 64^2, 12 modes, 4 layers; medians of alternating runs (clean = rounds without another "
        "process taking the cores). Ratio < 1: ours is faster.",
        "",
        "| width | what | ours ms | neuraloperator ms | ours / neuraloperator | clean rounds |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['width']} | {r['what']} | {r['ours_ms']:.2f} | {r['theirs_ms']:.2f} | {r['ratio']:.2f} | "
            f"{r['clean']} |"
        )
    worst = max(r["ratio"] for r in rows)
    lines += [
        "",
        f"Goal (no slower than the peer): worst ratio {worst:.2f} — {'met' if worst <= 1.05 else 'not met'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file, or - to print"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--widths", type=int, nargs="*", help="default: the study's width and 20")
    args = parser.parse_args(argv)
    neuralop = load_neuralop()
    if neuralop is None:
        print(f"bench_fno: {MISSING}", file=sys.stderr)
        return 2
    tune_cpu_allocator()
    t0 = time.perf_counter()
    widths = args.widths or [study_width(), 20]
    par = [{"width": w, **parity(neuralop, width=w, size=args.size)} for w in widths]
    rows = []
    for w in widths:
        rows += speed(
            neuralop,
            width=w,
            size=args.size,
            repeats=args.repeats,
            min_seconds=args.min_seconds,
            device=args.device,
        )
    command = "python scripts/bench_fno.py" + ("" if args.device == "cpu" else f" --device {args.device}")
    text = format_section(
        par,
        rows,
        machine=describe_machine(torch.device(args.device)),
        version=getattr(neuralop, "__version__", "?"),
        seconds=time.perf_counter() - t0,
        command=command,
    )
    publish_section(args.out, SECTION, text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    raise SystemExit(main())
