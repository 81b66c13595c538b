"""PNG figures of rollout evaluations (matplotlib, Agg backend), written atomically.

* :func:`plot_error_curves`: an error metric against lead time, several models on one plot, each model's
  transformed-test-set variant dashed in the same colour;
* :func:`plot_snapshots`: truth | prediction | error at a few leads of one rollout;
* :func:`plot_spectra`: energy spectra (log-log) of the truth and the predictions at a few leads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from sim.evaluate._common import (
    element_name,
    open_netcdf,
    open_source,
    read_frames,
    sample_positions,
    transform_vorticity,
)
from sim.io import atomic_output, check_output_path

__all__ = ["plot_error_curves", "plot_snapshots", "plot_spectra"]

_LABELS = {
    "rel_l2": "relative L2 error",
    "rmse": "RMSE",
    "correlation": "correlation with the truth",
    "enstrophy_pred": "enstrophy of the prediction",
    "enstrophy_ratio": "enstrophy, prediction / truth",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, overwrite: bool) -> Path:
    plt = _pyplot()
    try:
        with atomic_output(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path


def plot_error_curves(
    curves: Mapping[str, xr.Dataset],
    path: str | os.PathLike,
    *,
    transformed: Mapping[str, xr.Dataset] | None = None,
    metric: str = "rel_l2",
    thresholds: Sequence[float] = (),
    log_y: bool | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Plot the mean over samples of a metric against lead time, one line per model.

    Args:
        curves: model name -> metrics Dataset from ``evaluate_rollout`` (solid lines).
        path: the PNG to write (its folder must exist).
        transformed: model name -> metrics on a transformed test set (dashed, in the model's colour;
            the element is read from the Dataset's attributes). Names not in ``curves`` get their own
            colour.
        metric: ``"rel_l2"``, ``"rmse"``, ``"correlation"``, ``"enstrophy_pred"`` or
            ``"enstrophy_ratio"`` (the ``*_mean`` variable is plotted).
        thresholds: horizontal dotted lines (e.g. the time-to-threshold levels).
        log_y: logarithmic y axis; default for errors, linear for the others.
        title: the plot title.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: no curves, or a Dataset without the metric.
        OutputError: the folder is missing or the file exists without ``overwrite``.
    """
    path = check_output_path(path, overwrite=overwrite)
    transformed = dict(transformed or {})
    if not curves and not transformed:
        raise ValueError("plot_error_curves: expected at least one metrics Dataset")
    var = f"{metric}_mean"
    for name, ds in [*curves.items(), *transformed.items()]:
        if var not in ds.variables:
            raise ValueError(f"plot_error_curves: {name!r} has no variable {var!r} (metric {metric!r})")
    if log_y is None:
        log_y = metric in ("rel_l2", "rmse")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(dict.fromkeys([*curves, *transformed]))
    color = {name: colors[i % len(colors)] for i, name in enumerate(names)}
    for name, ds in curves.items():
        ax.plot(ds["lead_time"].values, ds[var].values, color=color[name], lw=1.6, label=name)
    for name, ds in transformed.items():
        label = f"{name}, {element_name(int(ds.attrs.get('element', 0)))}"
        ax.plot(ds["lead_time"].values, ds[var].values, color=color[name], lw=1.4, ls="--", label=label)
    for thr in thresholds:
        ax.axhline(thr, color="0.5", lw=0.8, ls=":")
    if log_y:
        ax.set_yscale("log")
    longest = max(int(ds["lead_time"].values[-1]) for ds in [*curves.values(), *transformed.values()])
    if longest > 20:
        ax.set_xscale("log")
    ax.set_xlabel("lead time (model steps)")
    ax.set_ylabel(_LABELS.get(metric, metric) + " (mean over samples)")
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, overwrite)


def _default_leads(steps: int, truth_leads: int, count: int = 4) -> list[int]:
    top = truth_leads if truth_leads >= 1 else steps
    top = min(top, steps)
    picks = np.unique(np.rint(np.geomspace(1, top, count)).astype(int)) if top > 1 else np.array([1])
    return [int(p) for p in picks]


def plot_snapshots(
    rollout_path: str | os.PathLike,
    path: str | os.PathLike,
    *,
    truth_path: str | os.PathLike | None = None,
    sample: int | None = None,
    leads: Sequence[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Truth | prediction | error (prediction - truth) of one sample at a few leads, one row per lead.

    The truth is the data file's frame ``start + (history - 1 + lead) * stride``, transformed by the rollout's
    element; it is blank past the data file's last frame.

    Args:
        rollout_path: a file from ``rollout_to_netcdf``.
        path: the PNG to write.
        truth_path: the data file; the rollout's ``data_file`` attribute when None.
        sample: a value of the rollout's ``sample`` coordinate; its first sample when None.
        leads: leads to show; default up to 4 spread geometrically over the leads with truth.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: an unknown sample or lead.
        OutputError: the folder is missing or the file exists without ``overwrite``.
        DataFileError: a file is missing or not in the expected layout.
    """
    path = check_output_path(path, overwrite=overwrite)
    with open_netcdf(rollout_path) as pred:
        attrs = dict(pred.attrs)
        samples = [int(s) for s in pred["sample"].values]
        steps = pred.sizes["lead_time"]
        s = samples[0] if sample is None else int(sample)
        if s not in samples:
            raise ValueError(f"sample: {s} is not in the rollout (samples {samples[:8]}...)")
        src = open_source(truth_path if truth_path is not None else attrs.get("data_file", ""))
        stride = int(attrs.get("stride", 1))
        first = int(attrs.get("start", 0)) + (int(attrs.get("history", 1)) - 1) * stride
        g = int(attrs.get("element", 0))
        truth_leads = max((src.n_frames - 1 - first) // stride, 0)
        leads = _default_leads(steps, truth_leads) if leads is None else [int(v) for v in leads]
        bad = [v for v in leads if not 1 <= v <= steps]
        if bad or not leads:
            raise ValueError(f"leads: expected leads in 1..{steps}, got {list(leads)}")
        i = samples.index(s)
        preds = [np.asarray(pred["vorticity"][i, v - 1].values, dtype=np.float64) for v in leads]
        diverged = int(pred["diverged_at"][i]) if "diverged_at" in pred.variables else -1
    truths = []
    with xr.open_dataset(src.path, engine="netcdf4", cache=False) as ds:
        pos = sample_positions(ds, np.asarray([s]))
        for v in leads:
            f = first + v * stride
            if f < src.n_frames:
                frame = torch.from_numpy(read_frames(ds, pos, f, f + 1)[0, 0])  # [y, x]
                truths.append(transform_vorticity(frame, g).double().numpy())
            else:
                truths.append(np.full_like(preds[0], np.nan))
    length = float(src.attrs.get("length", 1.0))
    extent = (0.0, length, 0.0, length)
    plt = _pyplot()
    fig, axes = plt.subplots(len(leads), 3, figsize=(8.2, 2.5 * len(leads) + 0.5), squeeze=False)
    fig.subplots_adjust(
        left=0.02, right=0.96, bottom=0.02, top=1 - 0.5 / (2.5 * len(leads) + 0.5), hspace=0.2
    )
    with np.errstate(invalid="ignore"):
        for row, (v, t, p) in enumerate(zip(leads, truths, preds, strict=True)):
            vmax = np.nanmax(np.abs(np.stack([t, p]))) if np.isfinite(np.stack([t, p])).any() else 1.0
            err = p - t
            emax = np.nanmax(np.abs(err)) if np.isfinite(err).any() else 1.0
            for col, (field, scale, name) in enumerate(
                ((t, vmax, "truth"), (p, vmax, "prediction"), (err, emax, "error"))
            ):
                ax = axes[row, col]
                im = ax.imshow(field, origin="lower", cmap="RdBu_r", vmin=-scale, vmax=scale, extent=extent)
                ax.set_title(f"{name}, lead {v}", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
                fig.colorbar(im, ax=ax, shrink=0.8)
    suptitle = f"{Path(rollout_path).name}: sample {s}, {element_name(g)}"
    if diverged >= 0:
        suptitle += f", diverged at lead {diverged}"
    fig.suptitle(suptitle, fontsize=10)
    return _save(fig, path, overwrite)


def plot_spectra(
    curves: Mapping[str, xr.Dataset],
    path: str | os.PathLike,
    *,
    leads: Sequence[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Energy spectra ``E(k)`` (log-log) of the truth and each model's predictions, one panel per lead.

    Args:
        curves: model name -> metrics Dataset from ``evaluate_rollout``; the truth is drawn from the
            first Dataset with a finite truth spectrum at each lead.
        path: the PNG to write.
        leads: leads to show, among the Datasets' ``spectrum_lead`` values; default those common to all
            (at most 4, spread over the range).
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: no curves, or no lead common to all.
        OutputError: the folder is missing or the file exists without ``overwrite``.
    """
    path = check_output_path(path, overwrite=overwrite)
    if not curves:
        raise ValueError("plot_spectra: expected at least one metrics Dataset")
    common = set.intersection(*(set(int(v) for v in ds["spectrum_lead"].values) for ds in curves.values()))
    if leads is None:
        ordered = sorted(common)
        if len(ordered) > 4:
            ordered = [ordered[int(i)] for i in np.unique(np.rint(np.linspace(0, len(ordered) - 1, 4)))]
        leads = ordered
    leads = [int(v) for v in leads]
    missing = [v for v in leads if v not in common]
    if missing or not leads:
        raise ValueError(f"plot_spectra: leads {missing or leads} are not spectrum leads of every Dataset")
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(leads), figsize=(3.4 * len(leads) + 0.6, 3.4), squeeze=False, layout="constrained"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, v in zip(axes[0], leads, strict=True):
        truth_done = False
        for i, (name, ds) in enumerate(curves.items()):
            sel = ds.sel(spectrum_lead=v)
            k = ds["wavenumber"].values[1:]
            if not truth_done and np.isfinite(sel["spectrum_truth"].values[1:]).any():
                ax.loglog(k, sel["spectrum_truth"].values[1:], color="k", lw=2.0, label="truth")
                truth_done = True
            ax.loglog(k, sel["spectrum_pred"].values[1:], color=colors[i % len(colors)], lw=1.2, label=name)
        ax.set_title(f"lead {v}", fontsize=9)
        ax.set_xlabel("k (2π / L)")
        ax.grid(True, lw=0.3, alpha=0.5)
    axes[0, 0].set_ylabel("E(k)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("kinetic energy spectra, mean over samples", fontsize=10)
    return _save(fig, path, overwrite)
