#!/usr/bin/env python
"""Benchmark: GroupConv2d against a plain Conv2d and e2cnn's R2Conv; equivariance error against angle.

1. **Speed.** Forward+backward of the P4 (C4) and P4M (D4) group convolution between regular fields
   (``[B, C, |G|, H, W]``), against (a) a plain ``nn.Conv2d`` on the same tensors (``C|G|`` channels in
   and out, same kernel and padding), the floor our layer can reach (goal: at most 1.05x), and (b)
   e2cnn's ``R2Conv`` between the same regular field types (goal: no slower). All timed alternately in
   one process; medians of several runs. The filter expansion alone (weights -> filter bank, forward and
   backward) is timed the same way, to show where the time goes. Also eval-mode forward under
   ``torch.no_grad()``, where our layer (and e2cnn) reuse the expanded filter bank.
2. **Equivariance against angle.** Relative error ``||f(g x) - g f(x)|| / ||g f(x)||`` for every element
   of C4 (exact on the grid), C8 and C16 (rotations by bilinear interpolation), for a lifting layer
   (scalar -> regular), a group convolution (regular -> regular) and a small stack (lift -> ReLU ->
   group conv -> mean over the group), in float64 on smooth random inputs, compared inside the inscribed
   disk less a margin. e2cnn's R2Conv is measured the same way, its regular fields mapped to ours.

    python scripts/bench_gconv.py                      # CPU; writes docs/benchmarks.md and the figure
    python scripts/bench_gconv.py --out -              # print only
    python scripts/bench_gconv.py --device cuda --skip-e2cnn

Writes its tables into docs/benchmarks.md between the markers of this benchmark (other sections stay)
and the figure docs/figures/gconv_equivariance_vs_angle.png.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.groups import FieldType, PlanarGroup, group_from_name  # noqa: E402
from sim.io import atomic_output, write_markdown_section  # noqa: E402
from sim.nn import GroupConv2d, group_pool  # noqa: E402
from sim.runtime import describe_machine, load_average, time_interleaved, tune_cpu_allocator  # noqa: E402
from sim.testing import equivariance_errors  # noqa: E402

START, END = "<!-- bench_gconv:start -->", "<!-- bench_gconv:end -->"
DEFAULT_FIGURE = ROOT / "docs" / "figures" / "gconv_equivariance_vs_angle.png"
LAYERS = ("lift", "gconv", "stack")
E2CNN_MISSING = "e2cnn not installed"


# ---------------------------------------------------------------------------------------------------
# e2cnn (optional)
def _load_e2cnn():
    """``(gspaces, e2cnn.nn)``, or None when e2cnn is not installed. The core package never imports it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import e2cnn
            from e2cnn import gspaces
            from e2cnn import nn as enn
    except ImportError:
        return None
    _patch_e2cnn_for_numpy2(e2cnn)
    return gspaces, enn


class _NumpyCopyFalse:
    """numpy, except that ``array(x, copy=False)`` means NumPy 1's "copy only if needed"."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def array(obj, *args, copy=True, **kwargs):
        if copy is False:
            return np.asarray(obj, *args, **kwargs)
        return np.array(obj, *args, copy=copy, **kwargs)


def _patch_e2cnn_for_numpy2(e2cnn) -> bool:
    """Make e2cnn 0.2.3 build dihedral kernel bases under NumPy >= 2.3, in this process only.

    Two calls that NumPy 2 removed or changed break ``R2Conv`` for ``FlipRot2dOnR2``:
    ``ndarray.tostring()`` in the ``__hash__`` of the kernel bases, and ``np.array(x, copy=False)``
    (now an error when a copy is needed) in ``e2cnn.kernels.utils``. Returns True if it patched.
    """
    if hasattr(np.ndarray, "tostring"):
        return False
    import e2cnn.kernels.utils  # noqa: F401  (the module object, not a name it exports)
    from e2cnn.kernels import irreps_basis

    sys.modules["e2cnn.kernels.utils"].np = _NumpyCopyFalse()

    def _h(v):
        return hash(v.tobytes()) if isinstance(v, np.ndarray) else hash(v)

    def __hash__(self):
        return hash(self.in_irrep) + hash(self.out_irrep) + _h(self.mu) + _h(self.gamma)

    for obj in vars(irreps_basis).values():
        if isinstance(obj, type) and issubclass(obj, irreps_basis.IrrepBasis) and "__hash__" in vars(obj):
            obj.__hash__ = __hash__
    return True


def _e2cnn_gspace(e2, group: PlanarGroup):
    gspaces, _ = e2
    return gspaces.FlipRot2dOnR2(group.n) if group.reflections else gspaces.Rot2dOnR2(group.n)


def _e2cnn_conv(e2, group: PlanarGroup, in_rep: str, out_rep: str, fields: int, kernel: int, padding: str):
    """e2cnn's R2Conv between ``fields`` fields of ``in_rep``/``out_rep`` ("trivial"/"regular"), defaults
    for the kernel basis, padding ``kernel // 2`` in e2cnn's ``padding_mode``."""
    _, enn = e2
    gs = _e2cnn_gspace(e2, group)
    reps = {"trivial": gs.trivial_repr, "regular": gs.regular_repr}
    in_type = enn.FieldType(gs, [reps[in_rep]] * (1 if in_rep == "trivial" else fields))
    out_type = enn.FieldType(gs, [reps[out_rep]] * fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e2cnn's own deprecation warnings (uint8 masks)
        return enn.R2Conv(in_type, out_type, kernel, padding=kernel // 2, padding_mode=padding)


def _e2cnn_permutation(group: PlanarGroup) -> list[int]:
    """Channel ``h`` of our regular fields is channel ``perm[h]`` of e2cnn's (cyclic groups).

    e2cnn orders C_N as ``r^0 .. r^(N-1)`` and its regular representation is ours (``rho(h) e_g =
    e_hg``), but it puts the row index of ``[..., H, W]`` pointing down (``np.rot90(x, 1, axes=(-2,
    -1))`` is its ``r``), while ours points up (docs/conventions.md). So its ``r^k`` moves the grid as
    our ``r^-k`` does, and its group axis is ours reversed: ``perm[h] = -h mod N`` (checked on C4, where
    both are exact: without the permutation the error at 90 degrees is of order 1).
    """
    if group.reflections:
        raise ValueError(f"the e2cnn channel map is worked out for cyclic groups only, got {group.name}")
    return [(-h) % group.n for h in group.elements()]


def _e2cnn_as_ours(e2, modules: list, group: PlanarGroup, *, regular_in: bool, pool: bool, perm=None):
    """A callable on our layouts that runs e2cnn modules (convolutions, ReLU between them).

    Input ``[B, 1, H, W]`` (scalar) or ``[B, C, |G|, H, W]`` (regular); output ``[B, C, |G|, H, W]`` or,
    with ``pool``, the mean over the group ``[B, C, H, W]``.
    """
    _, enn = e2
    perm = _e2cnn_permutation(group) if perm is None else perm
    G = group.order

    def fn(x: torch.Tensor) -> torch.Tensor:
        B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
        if regular_in:
            x = x[:, :, perm].reshape(B, -1, H, W)  # [B, C*G, H, W] in e2cnn's order
        y = x
        for i, m in enumerate(modules):
            if i:
                y = torch.relu(y)
            y = m(enn.GeometricTensor(y, m.in_type)).tensor
        y = y.reshape(B, -1, G, H, W)[:, :, perm]  # [B, C, G, H, W] in our order
        return y.mean(dim=2) if pool else y

    return fn


# ---------------------------------------------------------------------------------------------------
# timing
def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _fwd_bwd(fn: Callable, x: torch.Tensor, params: list[torch.Tensor], grad_out: torch.Tensor):
    """One forward and backward: gradients of ``<fn(x), grad_out>`` for the input and the parameters."""

    def step():
        torch.autograd.grad(fn(x), [x, *params], grad_out)

    return step


def _expansion(expand: Callable, params: list[torch.Tensor], grads: list[torch.Tensor]):
    """Forward and backward of a filter expansion alone (weights -> filter bank and bias)."""

    def step():
        outs = [t for t in expand() if t is not None]
        torch.autograd.grad(outs, params, grads[: len(outs)])

    return step


def bench_speed(
    group_name: str,
    *,
    fields: int = 16,
    batch: int = 8,
    size: int = 64,
    kernel: int = 5,
    padding: str = "circular",
    repeats: int = 7,
    min_seconds: float = 0.2,
    device: torch.device | str = "cpu",
    e2=None,
    eval_forward: bool = True,
    seed: int = 0,
) -> dict:
    """Time GroupConv2d between ``fields`` regular fields against nn.Conv2d (and e2cnn) on the same sizes.

    Args:
        group_name: ``"C4"``/``"P4"`` or ``"D4"``/``"P4M"`` (any group exact on the grid).
        fields, batch, size, kernel: regular fields in and out, batch, grid side, kernel side.
        padding: ``"circular"`` or ``"zeros"``, for all three layers.
        repeats, min_seconds: see :func:`time_interleaved`.
        device: where to run.
        e2: the result of :func:`_load_e2cnn`, or None to leave e2cnn out.
        eval_forward: also time eval-mode forward under ``torch.no_grad()``.
        seed: for the weights and the input.

    Returns:
        A row: milliseconds per call (``train_ms``/``eval_ms``/``expand_ms`` by implementation),
        parameter counts (``params``), ratios, spreads.
    """
    device = torch.device(device)
    group = group_from_name(group_name)
    G = group.order
    regular = FieldType.regular_fields(group, fields)
    torch.manual_seed(seed)
    ours = GroupConv2d(regular, regular, kernel, padding=padding).to(device)
    plain = nn.Conv2d(fields * G, fields * G, kernel, padding=kernel // 2, padding_mode=padding).to(device)
    e2conv = _e2cnn_conv(e2, group, "regular", "regular", fields, kernel, padding).to(device) if e2 else None

    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(batch, fields, G, size, size, generator=gen).to(device)  # [B, C, G, H, W]
    grad_out = torch.randn(batch, fields, G, size, size, generator=gen).to(device)
    x_ours = data.clone().requires_grad_()  # [B, C, G, H, W]
    x_flat = data.reshape(batch, fields * G, size, size).clone().requires_grad_()  # [B, C*G, H, W]
    g_flat = grad_out.reshape(batch, fields * G, size, size)

    layers = {"ours": ours, "plain": plain}
    inputs = {"ours": x_ours, "plain": x_flat}
    calls: dict[str, Callable] = {"ours": ours, "plain": plain}
    grads = {"ours": grad_out, "plain": g_flat}
    if e2conv is not None:
        _, enn = e2
        layers["e2cnn"], inputs["e2cnn"], grads["e2cnn"] = e2conv, x_flat, g_flat
        calls["e2cnn"] = lambda x: e2conv(enn.GeometricTensor(x, e2conv.in_type)).tensor

    fns = {
        name: _fwd_bwd(calls[name], inputs[name], list(layers[name].parameters()), grads[name])
        for name in layers
    }
    bank, bias = ours.expand_filters()
    fns["ours: expansion"] = _expansion(
        ours.expand_filters, [ours.weight, ours.bias], [torch.randn_like(bank), torch.randn_like(bias)]
    )
    if e2conv is not None:
        f, b = e2conv.expand_parameters()
        e2_params = [e2conv.weights] + ([e2conv.bias] if e2conv.bias is not None else [])
        fns["e2cnn: expansion"] = _expansion(
            e2conv.expand_parameters,
            e2_params,
            [torch.randn_like(f)] + ([torch.randn_like(b)] if b is not None else []),
        )
    for m in layers.values():
        m.train()
    train = time_interleaved(fns, repeats=repeats, min_seconds=min_seconds, device=device)

    evals = {}
    if eval_forward:
        for m in layers.values():
            m.eval()  # e2cnn expands and stores its filter here; ours on the first no-grad call
        detached = {name: x.detach() for name, x in inputs.items()}

        def _forward(name):
            def step():
                with torch.no_grad():
                    calls[name](detached[name])

            return step

        evals = time_interleaved(
            {name: _forward(name) for name in layers}, repeats=repeats, min_seconds=min_seconds, device=device
        )
        for m in layers.values():
            m.train()

    def ms(d: dict, key: str) -> float | None:
        return 1e3 * d[key]["median"] if key in d else None

    def paired(a: str, b: str) -> tuple[float | None, float | None]:
        """Median over rounds of the ratio within each round, and its median absolute deviation."""
        if a not in train or b not in train:
            return None, None
        ratios = [x / y for x, y in zip(train[a]["samples"], train[b]["samples"], strict=True)]
        mid = statistics.median(ratios)
        return mid, statistics.median(abs(q - mid) for q in ratios)

    vs_plain, vs_e2cnn = paired("ours", "plain"), paired("ours", "e2cnn")

    row = {
        "group": group.name,
        "alias": {"C4": "P4", "D4": "P4M"}.get(group.name, group.name),
        "padding": padding,
        "params": {name: _params(m) for name, m in layers.items()},
        "train_ms": {name: ms(train, name) for name in layers},
        "ratio": {"plain": vs_plain[0], "e2cnn": vs_e2cnn[0]},
        "ratio_mad": {"plain": vs_plain[1], "e2cnn": vs_e2cnn[1]},
        "expand_ms": {
            name: ms(train, f"{name}: expansion") for name in layers if f"{name}: expansion" in train
        },
        "eval_ms": {name: ms(evals, name) for name in layers} if evals else {},
        "spread": {name: (1e3 * t["min"], 1e3 * t["max"]) for name, t in train.items()},
        "calls": {name: t["calls"] for name, t in train.items()},
        "cpu_share": train["plain"]["cpu_share"],
        "clean": f"{next(iter(train.values()))['clean']}/{next(iter(train.values()))['rounds']}"
        + (
            f", eval {next(iter(evals.values()))['clean']}/{next(iter(evals.values()))['rounds']}"
            if evals
            else ""
        ),
    }
    return row


# ---------------------------------------------------------------------------------------------------
# equivariance
class _Stack(nn.Module):
    """lift (scalar -> regular) -> ReLU -> group conv (regular -> regular) -> mean over the group."""

    def __init__(self, lift: GroupConv2d, gconv: GroupConv2d):
        super().__init__()
        self.lift, self.gconv = lift, gconv
        self.in_type = lift.in_type
        self.out_type = FieldType(lift.in_type.group, ("scalar",) * gconv.out_type.num_fields)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 1, H, W] -> [B, C, H, W]
        return group_pool(self.gconv(torch.relu(self.lift(x))), "mean")


def _our_layers(group: PlanarGroup, fields: int, kernel: int, seed: int) -> dict[str, nn.Module]:
    scalar, regular = FieldType(group, ("scalar",)), FieldType.regular_fields(group, fields)
    opts = {"padding": "zeros", "allow_approximate": True}
    torch.manual_seed(seed)
    lift = GroupConv2d(scalar, regular, kernel, **opts)
    gconv = GroupConv2d(regular, regular, kernel, **opts)
    return {"lift": lift, "gconv": gconv, "stack": _Stack(lift, gconv)}


def _e2cnn_layers(
    e2, group: PlanarGroup, fields: int, kernel: int, seed: int, perm=None
) -> dict[str, Callable]:
    torch.manual_seed(seed)
    lift = _e2cnn_conv(e2, group, "trivial", "regular", fields, kernel, "zeros").double().eval()
    gconv = _e2cnn_conv(e2, group, "regular", "regular", fields, kernel, "zeros").double().eval()
    return {
        "lift": _e2cnn_as_ours(e2, [lift], group, regular_in=False, pool=False, perm=perm),
        "gconv": _e2cnn_as_ours(e2, [gconv], group, regular_in=True, pool=False, perm=perm),
        "stack": _e2cnn_as_ours(e2, [lift, gconv], group, regular_in=False, pool=True, perm=perm),
    }


def _layer_types(group: PlanarGroup, fields: int) -> dict[str, tuple[FieldType, FieldType]]:
    scalar, regular = FieldType(group, ("scalar",)), FieldType.regular_fields(group, fields)
    return {
        "lift": (scalar, regular),
        "gconv": (regular, regular),
        "stack": (scalar, FieldType(group, ("scalar",) * fields)),
    }


def equivariance_vs_angle(
    groups: tuple[str, ...] = ("C4", "C8", "C16"),
    *,
    size: int = 64,
    fields: int = 4,
    kernel: int = 5,
    smooth: float = 2.0,
    margin: float = 6.0,
    batch: int = 2,
    seed: int = 0,
    e2=None,
) -> list[dict]:
    """Relative equivariance error of each layer for every rotation of each group, ours and e2cnn's.

    All in float64 on CPU, zero padding, inputs ``random_field(..., smooth=smooth)``; for groups that act
    only approximately the error is measured inside the disk of radius ``size/2 - margin``
    (:func:`sim.testing.equivariance_errors`).

    Returns:
        One row per group element: ``{"group", "element", "angle", "ours": {layer: err}, "e2cnn": {...}}``
        (``e2cnn`` empty without e2cnn).
    """
    kw = {
        "size": size,
        "batch": batch,
        "smooth": smooth,
        "margin": margin,
        "seed": seed,
        "dtype": torch.float64,
    }
    rows = []
    for name in groups:
        group = group_from_name(name)
        if group.reflections:
            raise ValueError(f"equivariance against angle is for cyclic groups, got {group.name}")
        types = _layer_types(group, fields)
        ours = {
            layer: equivariance_errors(m, *types[layer], **kw).errors
            for layer, m in _our_layers(group, fields, kernel, seed).items()
        }
        theirs = {}
        if e2 is not None:
            theirs = {
                layer: equivariance_errors(fn, *types[layer], **kw).errors
                for layer, fn in _e2cnn_layers(e2, group, fields, kernel, seed).items()
            }
        for g in group.elements():
            rows.append(
                {
                    "group": group.name,
                    "element": g,
                    "angle": math.degrees(group.angle(g)),
                    "ours": {layer: errs[g] for layer, errs in ours.items()},
                    "e2cnn": {layer: errs[g] for layer, errs in theirs.items()},
                }
            )
    return rows


def e2cnn_convention_check(e2, *, size: int = 32, fields: int = 2, kernel: int = 5, seed: int = 0) -> dict:
    """Worst C4 group-conv error of e2cnn with our channel map and without it (identity map).

    With the right map e2cnn is exact on C4 (rot90 moves pixels onto pixels), so the first must be at
    rounding level and the second of order 1; otherwise the C8/C16 comparison would mean nothing.
    """
    group = group_from_name("C4")
    types = _layer_types(group, fields)["gconv"]
    kw = {"size": size, "batch": 1, "seed": seed, "dtype": torch.float64}
    out = {}
    for label, perm in (("mapped", None), ("identity", list(group.elements()))):
        fn = _e2cnn_layers(e2, group, fields, kernel, seed, perm=perm)["gconv"]
        out[label] = equivariance_errors(fn, *types, **kw).worst
    return out


def save_equivariance_plot(rows: list[dict], path: Path, *, title: str = "") -> Path:
    """Error against angle (degrees), one panel per layer, one line per group (ours solid, e2cnn dashed),
    log y; written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(r["group"] for r in rows))
    colors = dict(zip(groups, ["tab:green", "tab:blue", "tab:red", "tab:purple", "tab:orange"], strict=False))
    sizes = {name: 7 - 1.5 * i for i, name in enumerate(groups)}  # smaller groups drawn last and larger
    fig, axes = plt.subplots(1, len(LAYERS), figsize=(12.5, 4.4), sharey=True, layout="constrained")
    floor = 1e-17  # exact rotations give a few 1e-16; the identity (error 0) is left out
    for ax, layer in zip(axes, LAYERS, strict=True):
        for name in reversed(groups):
            rs = [r for r in rows if r["group"] == name and r["element"] != 0]
            if not rs:
                continue
            angles = [r["angle"] for r in rs]
            for impl, style, marker in (("e2cnn", "--", "s"), ("ours", "-", "o")):
                if not rs[0][impl]:
                    continue
                ax.plot(
                    angles,
                    [max(r[impl][layer], floor) for r in rs],
                    linestyle=style,
                    linewidth=1.2,
                    marker=marker,
                    markersize=sizes[name] + (2 if impl == "e2cnn" else 0),
                    color=colors[name],
                    markerfacecolor=colors[name] if impl == "ours" else "white",
                    label=f"{name}: {'sim GroupConv2d' if impl == 'ours' else 'e2cnn R2Conv'}",
                )
        ax.set_yscale("log")
        ax.set_ylim(floor / 3, 3.0)
        ax.set_xlim(0, 360)
        ax.set_xticks(range(0, 361, 45))
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("rotation angle (degrees)")
        ax.set_title(
            {
                "lift": "lifting conv (scalar -> regular)",
                "gconv": "group conv (regular -> regular)",
                "stack": "lift -> ReLU -> gconv -> group mean",
            }[layer],
            fontsize=10,
        )
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(
        range(len(labels)), key=lambda i: (groups.index(labels[i].split(":")[0]), "e2cnn" in labels[i])
    )
    fig.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="outside lower center",
        ncol=3,
        fontsize=8,
    )
    axes[0].set_ylabel("relative equivariance error")
    if title:
        fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------
# tables and output
def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def speed_table(rows: list[dict]) -> str:
    """Forward+backward ms, ratios, filter-expansion share and eval forward ms, one row per case."""
    has_e2 = any("e2cnn" in r["train_ms"] for r in rows)
    head = "| group | padding | ours ms | Conv2d ms | ours / Conv2d |"
    sep = "|---|---|---:|---:|---:|"
    if has_e2:
        head += " e2cnn ms | ours / e2cnn |"
        sep += "---:|---:|"
    head += " ours: expansion ms (share) |"
    sep += "---:|"
    if has_e2:
        head += " e2cnn: expansion ms |"
        sep += "---:|"
    head += " eval fwd ms: ours / Conv2d" + (" / e2cnn" if has_e2 else "") + " | clean rounds |"
    sep += "---:|---:|"
    lines = [head, sep]
    for r in rows:
        t, e, x = r["train_ms"], r["eval_ms"], r["expand_ms"]
        line = (
            f"| {r['alias']} ({r['group']}) | {r['padding']} | {t['ours']:.1f} | {t['plain']:.1f} | "
            f"{r['ratio']['plain']:.3f} |"
        )
        if has_e2:
            e2 = t.get("e2cnn")
            line += f" {_fmt(e2, '.1f')} | {_fmt(r['ratio']['e2cnn'], '.3f')} |"
        line += f" {x['ours']:.2f} ({100 * x['ours'] / t['ours']:.1f}%) |"
        if has_e2:
            line += f" {_fmt(x.get('e2cnn'), '.2f')} |"
        names = ["ours", "plain"] + (["e2cnn"] if has_e2 else [])
        line += " " + (" / ".join(_fmt(e.get(n), ".1f") for n in names) if e else "—") + " |"
        line += f" {r['clean']} |"
        lines.append(line)
    return "\n".join(lines)


def params_table(rows: list[dict]) -> str:
    has_e2 = any("e2cnn" in r["params"] for r in rows)
    lines = [
        "| group | ours (GroupConv2d) | nn.Conv2d | " + ("e2cnn R2Conv |" if has_e2 else ""),
        "|---|---:|---:|" + ("---:|" if has_e2 else ""),
    ]
    seen = set()
    for r in rows:
        if r["group"] in seen:
            continue
        seen.add(r["group"])
        p = r["params"]
        line = f"| {r['alias']} ({r['group']}) | {p['ours']:,} | {p['plain']:,} |"
        if has_e2:
            line += f" {_fmt(p.get('e2cnn'), ',')} |"
        lines.append(line)
    return "\n".join(lines)


def equivariance_table(rows: list[dict]) -> str:
    """One row per non-identity element: errors of ours (and e2cnn's) lift, gconv, stack."""
    has_e2 = any(r["e2cnn"] for r in rows)
    head = "| group | angle | ours: lift | ours: gconv | ours: stack |"
    sep = "|---|---:|---:|---:|---:|"
    if has_e2:
        head += " e2cnn: lift | e2cnn: gconv | e2cnn: stack |"
        sep += "---:|---:|---:|"
    lines = [head, sep]
    for r in rows:
        if r["element"] == 0:
            continue
        line = (
            f"| {r['group']} | {r['angle']:g}° | " + " | ".join(f"{r['ours'][k]:.1e}" for k in LAYERS) + " |"
        )
        if has_e2:
            line += " " + " | ".join(f"{r['e2cnn'][k]:.1e}" for k in LAYERS) + " |"
        lines.append(line)
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it), atomically."""
    write_markdown_section(path, "bench_gconv", section)


def _command(args) -> str:
    parts = ["python scripts/bench_gconv.py"]
    defaults = _parser().parse_args([])
    for key in ("device", "repeats", "min_seconds", "batch", "size", "fields", "kernel", "equiv_size"):
        if getattr(args, key) != getattr(defaults, key):
            parts.append(f"--{key.replace('_', '-')} {getattr(args, key)}")
    for key in ("skip_e2cnn", "no_tune_allocator"):
        if getattr(args, key):
            parts.append(f"--{key.replace('_', '-')}")
    return " ".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (the equivariance part runs on CPU)")
    parser.add_argument(
        "--repeats", type=int, default=11, help="timed runs per case (the median is reported)"
    )
    parser.add_argument("--min-seconds", type=float, default=0.2, help="least duration of a timed run")
    parser.add_argument("--batch", type=int, default=8, help="speed: batch size")
    parser.add_argument("--size", type=int, default=64, help="speed: grid side")
    parser.add_argument("--fields", type=int, default=16, help="speed: regular fields in and out")
    parser.add_argument("--kernel", type=int, default=5, help="kernel side (speed and equivariance)")
    parser.add_argument("--equiv-size", type=int, default=64, help="equivariance: grid side")
    parser.add_argument("--skip-e2cnn", action="store_true", help="leave e2cnn out even if installed")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="markdown file to update; '-' to only print (then no figure is written either)",
    )
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE, help="PNG of error against angle")
    parser.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="leave glibc malloc as it is (the sim command tunes it: see sim.runtime.tune_cpu_allocator)",
    )
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    tuned = False if args.no_tune_allocator else tune_cpu_allocator()
    device = torch.device(args.device)
    e2 = None if args.skip_e2cnn else _load_e2cnn()
    e2_note = "skipped (--skip-e2cnn)" if args.skip_e2cnn else (E2CNN_MISSING if e2 is None else "")
    if e2_note:
        print(f"e2cnn: {e2_note}")
    load_start = load_average()
    t_start = time.perf_counter()

    speed_rows = []
    for padding in ("circular", "zeros"):
        for name in ("P4", "P4M"):
            r = bench_speed(
                name,
                fields=args.fields,
                batch=args.batch,
                size=args.size,
                kernel=args.kernel,
                padding=padding,
                repeats=args.repeats,
                min_seconds=args.min_seconds,
                device=device,
                e2=e2,
            )
            speed_rows.append(r)
            t = r["train_ms"]
            print(
                f"{r['alias']:4s} {padding:8s}: ours {t['ours']:8.2f} ms, Conv2d {t['plain']:8.2f} ms "
                f"({r['ratio']['plain']:.3f}x)"
                + (f", e2cnn {t['e2cnn']:8.2f} ms ({r['ratio']['e2cnn']:.3f}x)" if "e2cnn" in t else "")
                + f"; expansion {r['expand_ms']['ours']:.2f} ms; clean rounds {r['clean']}; "
                + f"Conv2d cores {r['cpu_share']:.2f}; spread "
                + ", ".join(f"{k} {lo:.1f}-{hi:.1f}" for k, (lo, hi) in r["spread"].items()),
                flush=True,
            )
    t_speed = time.perf_counter() - t_start

    check = e2cnn_convention_check(e2) if e2 is not None else None
    if check is not None:
        print(f"e2cnn C4 channel map: worst error {check['mapped']:.1e} (unmapped {check['identity']:.1e})")
        if not check["mapped"] < 1e-10 < check["identity"]:
            raise RuntimeError(f"e2cnn's regular fields are not mapped onto ours correctly: {check}")
    eq_opts = {"size": args.equiv_size, "fields": 4, "kernel": args.kernel, "smooth": 2.0, "margin": 6.0}
    eq_rows = equivariance_vs_angle(("C4", "C8", "C16"), e2=e2, **eq_opts)
    t_total = time.perf_counter() - t_start
    shares = [r["cpu_share"] for r in speed_rows]
    load = (load_start, load_average(), f"{min(shares):.2f}–{max(shares):.2f}")
    print(f"1-minute load average: {load[0]} at the start, {load[1]} at the end; Conv2d CPU share {load[2]}")

    tables = {
        "speed": speed_table(speed_rows),
        "params": params_table(speed_rows),
        "equiv": equivariance_table(eq_rows),
    }
    summary = _summary(speed_rows, eq_rows)
    print("\n" + tables["speed"] + "\n\n" + tables["params"] + "\n\n" + tables["equiv"] + "\n\n" + summary)
    print(f"\nspeed {t_speed:.0f} s, total {t_total:.0f} s")
    if str(args.out) == "-":
        return 0

    figure = save_equivariance_plot(
        eq_rows,
        args.figure,
        title=f"Equivariance error against rotation angle ({args.equiv_size}², kernel {args.kernel}, "
        f"float64, smooth random inputs, inner disk less {eq_opts['margin']:g} px)",
    )
    fig_link = Path(os.path.relpath(figure.resolve(), args.out.resolve().parent)).as_posix()
    section = _section(
        args, device, tuned, e2, e2_note, check, eq_opts, tables, summary, fig_link, t_total, load
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section(args.out, section)
    print(f"\nwrote {args.out} and {figure}")
    return 0


def _summary(speed_rows: list[dict], eq_rows: list[dict]) -> str:
    """One line per goal, from the measurements."""
    ratios = [r["ratio"]["plain"] for r in speed_rows]
    share = [r["expand_ms"]["ours"] / r["train_ms"]["ours"] for r in speed_rows]
    lines = [
        f"* ours / Conv2d ≤ 1.05: met in {sum(x <= 1.05 for x in ratios)} of {len(ratios)} cases "
        f"(range {min(ratios):.3f}–{max(ratios):.3f}); the filter expansion is "
        f"{100 * min(share):.1f}–{100 * max(share):.1f}% of our forward+backward."
    ]
    e2_rows = [r for r in speed_rows if r["ratio"]["e2cnn"] is not None]
    if e2_rows:
        e2_ratios = [r["ratio"]["e2cnn"] for r in e2_rows]
        ties = sum(abs(r["ratio"]["e2cnn"] - 1) <= r["ratio_mad"]["e2cnn"] for r in e2_rows)
        mads = [r["ratio_mad"]["e2cnn"] for r in e2_rows]
        lines.append(
            f"* ours / e2cnn ≤ 1: met in {sum(x <= 1 for x in e2_ratios)} of {len(e2_ratios)} cases "
            f"(range {min(e2_ratios):.3f}–{max(e2_ratios):.3f}); the per-round ratios scatter by "
            f"{min(mads):.3f}–{max(mads):.3f} (median absolute deviation), and the distance from 1 is "
            f"within that scatter in {ties} of {len(e2_rows)} cases."
        )
    for name in dict.fromkeys(r["group"] for r in eq_rows):
        rs = [r for r in eq_rows if r["group"] == name and r["element"] != 0]
        for impl in ("ours", "e2cnn"):
            if not rs or not rs[0][impl]:
                continue
            worst = {layer: max(r[impl][layer] for r in rs) for layer in LAYERS}
            label = "ours" if impl == "ours" else "e2cnn"
            lines.append(
                f"* {name}, {label}: worst relative error "
                + ", ".join(f"{layer} {worst[layer]:.1e}" for layer in LAYERS)
                + "."
            )
    return "\n".join(lines)


def _section(
    args, device, tuned, e2, e2_note, check, eq_opts, tables, summary, fig_link, t_total, load
) -> str:
    if e2 is not None:
        import e2cnn

        e2_line = (
            f"e2cnn {getattr(e2cnn, '__version__', '?')}: `R2Conv(in_type, out_type, kernel_size, "
            "padding=kernel_size // 2, padding_mode=<same as ours>)` with its default kernel basis "
            "(`basisexpansion='blocks'`, rings at radii 0, 1, 2 with `sigma=[0.005, 0.6, 0.4]`, "
            "`frequencies_cutoff=-1`, i.e. angular frequencies up to 2, `maximum_offset=None`), bias on, "
            f"between {args.fields} regular fields of `gspaces.Rot2dOnR2(4)` / `gspaces.FlipRot2dOnR2(4)`; "
            "train mode expands its filter every forward, eval mode stores it. e2cnn 0.2.3 predates NumPy 2: "
            "the script patches, in its own process, `ndarray.tostring` and `np.array(copy=False)` in "
            "e2cnn's kernel code, without which no `FlipRot2dOnR2` kernel basis can be built."
        )
        e2_eq = (
            "e2cnn's `R2Conv` (defaults as above, `padding_mode='zeros'`) is measured with the same inputs, "
            "rotations and mask. Its regular fields map onto ours by reversing the group axis, "
            "h → −h mod N: e2cnn orders C_N as r^0 … r^(N−1) and uses our regular representation, but its "
            "row index points down (its r is `np.rot90(x, 1, axes=(-2, -1))`) where ours points up, so its "
            f"r^k moves the grid as our r^−k. Checked on C4, exact for both: mapped worst error "
            f"{check['mapped']:.0e}, unmapped {check['identity']:.1f}."
        )
    else:
        e2_line = e2_eq = f"e2cnn: {e2_note}."
    command = _command(args)
    return f"""## Group convolution: GroupConv2d vs nn.Conv2d and e2cnn ({device.type})

`{command}` on {describe_machine(device)}; {t_total:.0f} s in all (1-minute load average {load[0]} before,
{load[1]} after; the timed Conv2d runs used {load[2]} cores, median per case). CPU allocator tuned as
the `sim` command does it: {"yes" if tuned else "no"}.

**Speed.** {args.fields} regular fields in and out, kernel {args.kernel}, batch {args.batch},
{args.size}×{args.size}, float32. Forward+backward (gradients of the input and the parameters) in train
mode, median ms of {args.repeats} runs of at least {args.min_seconds:g} s each, the implementations timed
alternately in one process. The reference `nn.Conv2d` has the same tensor sizes ({args.fields}·|G|
channels in and out, same kernel and padding): the floor for a G-CNN layer that expands a filter bank.
The ratios are medians over the rounds of the ratio within each round (the runs compared a few
seconds apart); goals: ours / Conv2d ≤ 1.05, ours / e2cnn ≤ 1. *Expansion* is the filter expansion
alone (weights → filter bank and bias, forward and backward), timed alongside; its share is of our
forward+backward.
*Eval fwd* is eval-mode forward under `torch.no_grad()`, where our layer and e2cnn reuse the expanded
bank. *Clean rounds*: a round (one timed run of each implementation) in which a multi-threaded run used
fewer than 85% of the cores it should (process CPU time / wall time, against its best run or 95% of
the torch threads) had another process competing for them; such rounds are re-run (up to
{2 * args.repeats} extra) and left out of the medians when at least 3 clean ones remain.
{e2_line}

{tables["speed"]}

Parameters (weights and biases):

{tables["params"]}

**Equivariance against rotation angle** ([figure]({fig_link})). Relative error
‖f(g·x) − g·f(x)‖ / ‖g·f(x)‖ for each group element (the identity, error 0, left out) from
`sim.testing.equivariance_errors` in float64 on CPU: inputs `random_field(..., smooth=2)`
({eq_opts["size"]}×{eq_opts["size"]}, batch 2), zero padding, kernel {args.kernel}, {eq_opts["fields"]}
regular fields, `allow_approximate=True`, weights from seed 0. *lift*: scalar → regular; *gconv*:
regular → regular; *stack*: lift → ReLU → gconv → mean over the group (invariant scalars). C8 and C16
rotate inputs, outputs and filters by bilinear interpolation (`sim.groups.transform_grid`), so errors
are compared inside the inscribed disk less {eq_opts["margin"]:g} px; rotations by multiples of 90°
move pixels onto pixels and are exact. Our filters are free {args.kernel}×{args.kernel} pixel arrays
rotated by interpolation; e2cnn's are band-limited (angular frequency ≤ 2, Gaussian rings) by
construction. {e2_eq}

{tables["equiv"]}

{summary}

![equivariance error against angle]({fig_link})
"""


if __name__ == "__main__":
    sys.exit(main())
