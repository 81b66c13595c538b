"""PNG figures of mesh rollout evaluations (matplotlib, Agg backend), written atomically.

* :func:`plot_mesh_error_curves`: an error metric (mean over samples) against lead time, one line per
  rollout; rollouts of the same model share a colour, its rotated / mirrored test sets are dashed;
* :func:`plot_mesh_snapshots`: truth | prediction | difference of the speed ``|u|`` (or ``v``) on one
  sample's mesh at a few leads;
* :func:`plot_probe_signal`: ``v`` at the wake probe against time, truth and prediction, with the
  Strouhal numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from sim.data.cylinder import open_cylinder
from sim.data.ns2d import DataFileError
from sim.evaluate._common import open_netcdf
from sim.evaluate.mesh_metrics import describe_test_set, probe_nodes
from sim.evaluate.plots import _default_leads, _pyplot, _save
from sim.io import check_output_path

__all__ = ["plot_mesh_error_curves", "plot_mesh_snapshots", "plot_probe_signal"]

_LABELS = {"rmse": "RMSE of the velocity", "rel_l2": "relative L2 error of the velocity"}
_STYLES = ("--", ":", "-.")


def _pairs(curves) -> list[tuple[str, xr.Dataset]]:
    items = list(curves.items()) if isinstance(curves, Mapping) else [tuple(c) for c in curves]
    if not items:
        raise ValueError("plot_mesh_error_curves: expected at least one (name, metrics) pair")
    return items


def plot_mesh_error_curves(
    curves: Sequence[tuple[str, xr.Dataset]] | Mapping[str, xr.Dataset],
    path: str | os.PathLike,
    *,
    metric: str = "rmse",
    log_y: bool = True,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Plot ``<metric>_mean`` against lead time, one line per rollout.

    Args:
        curves: ``(model name, metrics Dataset from evaluate_mesh_rollout)`` pairs (or a mapping). The
            same name may appear with several test sets (read from the Datasets' ``rotation_deg`` /
            ``mirror``): one colour per name, solid for the original test set, dashed for the others.
        path: the PNG to write (its folder must exist).
        metric: ``"rmse"`` or ``"rel_l2"`` (any variable with a ``*_mean`` over ``lead_time``).
        log_y: logarithmic y axis.
        title: the plot title.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: no curves, or a Dataset without ``<metric>_mean``.
        OutputError: the folder is missing or the file exists without ``overwrite``.
    """
    path = check_output_path(path, overwrite=overwrite)
    items = _pairs(curves)
    var = f"{metric}_mean"
    for name, ds in items:
        if var not in ds.variables or ds[var].dims != ("lead_time",):
            raise ValueError(f"plot_mesh_error_curves: {name!r} has no variable {var!r} [lead_time]")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(dict.fromkeys(name for name, _ in items))
    color = {name: colors[i % len(colors)] for i, name in enumerate(names)}
    variants: dict[str, int] = {}
    for name, ds in items:
        test_set = describe_test_set(ds.attrs)
        if test_set == "original":
            style, label = "-", name
        else:
            style = _STYLES[variants.get(name, 0) % len(_STYLES)]
            variants[name] = variants.get(name, 0) + 1
            label = f"{name}, {test_set}"
        y = np.asarray(ds[var].values, dtype=np.float64)
        if log_y:
            y = np.where(y > 0, y, np.nan)  # zero error (a perfect lead) has no place on a log axis
        ax.plot(ds["lead_time"].values, y, color=color[name], ls=style, lw=1.5, label=label)
    if log_y:
        ax.set_yscale("log")
    if max(int(ds["lead_time"].values[-1]) for _, ds in items) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("lead time (model steps)")
    ax.set_ylabel(_LABELS.get(metric, metric) + " (mean over samples)")
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, overwrite)


def plot_mesh_snapshots(
    rollout_path: str | os.PathLike,
    path: str | os.PathLike,
    *,
    truth_path: str | os.PathLike | None = None,
    sample: int | None = None,
    leads: Sequence[int] | None = None,
    field: Literal["speed", "v"] = "speed",
    overwrite: bool = False,
) -> Path:
    """Truth | prediction | prediction - truth of one sample on its mesh, one row per lead.

    The fields are drawn with ``tripcolor`` on the sample's triangles (Gouraud shading); the truth is the
    data file's frame ``start + (history - 1 + lead) * stride`` (blank past the data file's last frame);
    the wake probe of :func:`~sim.evaluate.mesh_metrics.evaluate_mesh_rollout` is marked ``x``.

    Args:
        rollout_path: a file from ``rollout_mesh_to_netcdf``.
        path: the PNG to write.
        truth_path: the data file; the rollout's ``data_file`` attribute when None.
        sample: a value of the rollout's ``sample`` coordinate; its first sample when None.
        leads: leads to show; default up to 4 spread geometrically over the leads with truth.
        field: ``"speed"`` (``|u|``) or ``"v"`` (the transverse velocity).
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: an unknown sample, lead or field.
        OutputError: the folder is missing or the file exists without ``overwrite``.
        DataFileError: a file is missing or not in the expected layout.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.tri import Triangulation

    if field not in ("speed", "v"):
        raise ValueError(f"field: expected 'speed' or 'v', got {field!r}")
    path = check_output_path(path, overwrite=overwrite)
    with open_netcdf(rollout_path) as pred:
        attrs = dict(pred.attrs)
        samples = [int(s) for s in pred["sample"].values]
        steps = pred.sizes["lead_time"]
        s = samples[0] if sample is None else int(sample)
        if s not in samples:
            raise ValueError(f"sample: {s} is not in the rollout (samples {samples[:8]})")
        i = samples.index(s)
        stride = int(attrs.get("stride", 1))
        first = int(attrs.get("start", 0)) + (int(attrs.get("history", 1)) - 1) * stride
        if truth_path is None and not attrs.get("data_file"):
            raise DataFileError(f"{rollout_path}: no data_file attribute; pass the data file as truth_path")
        with open_cylinder(truth_path if truth_path is not None else attrs["data_file"]) as truth:
            n_frames = truth.sizes["time"]
            truth_leads = max((n_frames - 1 - first) // stride, 0)
            leads = _default_leads(steps, truth_leads) if leads is None else [int(v) for v in leads]
            bad = [v for v in leads if not 1 <= v <= steps]
            if bad or not leads:
                raise ValueError(f"leads: expected leads in 1..{steps}, got {list(leads)}")
            n, f = int(truth["num_nodes"][s]), int(truth["num_faces"][s])
            pos = np.asarray(truth["pos"][s, :n].values, dtype=np.float64)  # [n, 2]
            cells = np.asarray(truth["cells"][s, :f].values).astype(np.int64)  # [f, 3]
            geo = [float(truth[k][s]) for k in ("center_x", "center_y", "diameter")]
            probe = int(probe_nodes(pos[None], np.array([n]), *([v] for v in geo))[0])
            times = np.asarray(truth["time"].values, dtype=np.float64)
            truths, preds, when = [], [], []
            for v in leads:
                preds.append(np.asarray(pred["velocity"][i, v - 1, :n].values, dtype=np.float64))  # [n, 2]
                frame = first + v * stride
                if frame < n_frames:
                    truths.append(np.asarray(truth["velocity"][s, frame, :n].values, dtype=np.float64))
                    when.append(f"t = {times[frame]:.3g} s")
                else:
                    truths.append(np.full((n, 2), np.nan))
                    when.append("no truth")
        diverged = int(pred["diverged_at"][i]) if "diverged_at" in pred.variables else -1

    def scalar(u: np.ndarray) -> np.ndarray:  # [n, 2] -> [n]
        return np.hypot(u[:, 0], u[:, 1]) if field == "speed" else u[:, 1]

    tri = Triangulation(pos[:, 0], pos[:, 1], cells)
    width = float(np.ptp(pos[:, 0])) or 1.0
    height = float(np.ptp(pos[:, 1])) or 1.0
    panel = (4.0, 4.0 * height / width + 0.45)
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(leads), 3, figsize=(3 * panel[0] + 0.6, panel[1] * len(leads) + 0.5), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    label = "|u|" if field == "speed" else "v"
    for row, (v, t, p, w) in enumerate(zip(leads, truths, preds, when, strict=True)):
        ts, ps = scalar(t), scalar(p)
        diff = ps - ts
        both = np.concatenate([ts, ps])
        top = (float(np.nanmax(np.abs(both))) if np.isfinite(both).any() else 0.0) or 1.0
        emax = (float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0) or 1.0
        lo, cmap = (0.0, "viridis") if field == "speed" else (-top, "RdBu_r")
        for col, (values, vmin, vmax, cm, name) in enumerate(
            (
                (ts, lo, top, cmap, f"truth {label}"),
                (ps, lo, top, cmap, f"prediction {label}"),
                (diff, -emax, emax, "RdBu_r", "prediction - truth"),
            )
        ):
            ax = axes[row, col]
            if np.isfinite(values).all():
                ax.tripcolor(tri, values, shading="gouraud", cmap=cm, vmin=vmin, vmax=vmax)
            else:
                ax.triplot(tri, color="0.85", lw=0.2)
                ax.text(0.5, 0.5, "no value", transform=ax.transAxes, ha="center", va="center", fontsize=9)
            ax.plot(*pos[probe], "x", color="k", ms=5, mew=1.2)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, lead {v} ({w})", fontsize=8)
        # one colour bar for truth and prediction (one scale), one for the difference
        fig.colorbar(ScalarMappable(Normalize(lo, top), cmap), ax=axes[row, :2].tolist(), shrink=0.8)
        fig.colorbar(ScalarMappable(Normalize(-emax, emax), "RdBu_r"), ax=axes[row, 2], shrink=0.8)
    suptitle = f"{Path(rollout_path).name}: sample {s}, {describe_test_set(attrs)}"
    if diverged >= 0:
        suptitle += f", diverged at lead {diverged}"
    fig.suptitle(suptitle, fontsize=10)
    return _save(fig, path, overwrite)


def plot_probe_signal(
    metrics: xr.Dataset,
    path: str | os.PathLike,
    *,
    sample: int | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """``v`` at the wake probe against time for one sample: the truth and the prediction.

    Args:
        metrics: the Dataset of ``evaluate_mesh_rollout`` (its ``probe_v_pred``, ``probe_v_truth``).
        path: the PNG to write.
        sample: a value of the ``sample`` coordinate; the first when None.
        name: the model's name for the legend (default ``"prediction"``).
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: an unknown sample or a Dataset without the probe signals.
        OutputError: the folder is missing or the file exists without ``overwrite``.
    """
    path = check_output_path(path, overwrite=overwrite)
    for var in ("probe_v_pred", "probe_v_truth", "strouhal_pred", "strouhal_truth"):
        if var not in metrics.variables:
            raise ValueError(
                f"plot_probe_signal: the metrics have no variable {var!r} (evaluate_mesh_rollout?)"
            )
    samples = [int(s) for s in metrics["sample"].values]
    s = samples[0] if sample is None else int(sample)
    if s not in samples:
        raise ValueError(f"sample: {s} is not in the metrics (samples {samples[:8]})")
    one = metrics.sel(sample=s)
    leads = np.asarray(metrics["lead_time"].values, dtype=np.float64)
    time = (
        np.asarray(metrics["time"].values, dtype=np.float64) if "time" in metrics.coords else leads * np.nan
    )
    use_time = np.isfinite(time).sum() >= 2
    if use_time:  # past the data file the time coordinate is NaN: extend it at the rollout's frame rate
        k = np.flatnonzero(np.isfinite(time))
        dt = (time[k[-1]] - time[k[0]]) / (leads[k[-1]] - leads[k[0]])
        x = time[k[0]] + (leads - leads[k[0]]) * dt
    else:
        x = leads
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.2), layout="constrained")
    ax.plot(x, one["probe_v_truth"].values, color="k", lw=1.6, label="truth")
    ax.plot(x, one["probe_v_pred"].values, color="C0", lw=1.2, label=name or "prediction")
    div = int(one["diverged_at"]) if "diverged_at" in one.variables else -1
    if div >= 1:
        ax.axvline(x[div - 1], color="C3", lw=0.8, ls=":", label=f"diverged (lead {div})")
    ax.set_xlabel("t (s)" if use_time else "lead time (model steps)")
    ax.set_ylabel("v at the probe")
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(fontsize=8)

    def st(var: str) -> str:
        v = float(one[var]) if var in one.variables else math.nan
        return f"{v:.3g}" if math.isfinite(v) else "–"

    where = f"({float(one['probe_x']):.3g}, {float(one['probe_y']):.3g})" if "probe_x" in one else ""
    ax.set_title(
        f"sample {s}, {describe_test_set(metrics.attrs)}: probe {where}; St pred {st('strouhal_pred')}, "
        f"truth {st('strouhal_truth')} (lift {st('strouhal_lift')})",
        fontsize=9,
    )
    return _save(fig, path, overwrite)
