"""A markdown report of mesh rollout evaluations: a summary table per model and test set, figures, files.

``results`` are ``(model name, rollout file)`` pairs or :class:`MeshEvalResult` (which may carry metrics
already computed), one per rollout. Rollouts of the same model on a rotated or mirrored domain
(``rollout_mesh_to_netcdf(..., rotation_deg=37)``) carry the same name; the test set is read from the
rollout's attributes and each rollout is its own row::

    rows = write_mesh_report(
        [("EGNN", "egnn.nc"), ("EGNN", "egnn_rot37.nc"), ("MGN", "mgn.nc"), ("MGN", "mgn_rot37.nc")],
        "runs/eval_cylinder",
    )
    print(format_mesh_summary(rows))
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from sim.evaluate._common import open_netcdf, relative_link
from sim.evaluate.mesh_metrics import describe_test_set, evaluate_mesh_rollout, save_mesh_metrics
from sim.evaluate.mesh_plots import plot_mesh_error_curves, plot_mesh_snapshots, plot_probe_signal
from sim.io import OutputError, atomic_output, check_output_path

__all__ = [
    "MESH_SUMMARY_COLUMNS",
    "MeshEvalResult",
    "format_mesh_summary",
    "mesh_summary_rows",
    "report_stem",
    "write_mesh_report",
]

#: Keys of each summary row, in order.
MESH_SUMMARY_COLUMNS = (
    "model",
    "test_set",
    "samples",
    "steps",
    "truth_leads",
    "rmse_1",
    "rmse_50",
    "rmse_all",
    "rel_l2_1",
    "rel_l2_50",
    "diverged",
    "first_divergence",
    "strouhal_pred",
    "strouhal_pred_samples",
    "strouhal_truth",
    "strouhal_lift",
)


@dataclass(frozen=True)
class MeshEvalResult:
    """One rollout of a model on one test set.

    Attributes:
        name: the model's name, e.g. ``"E(2) MeshGraphNet"``; the same for its rotated / mirrored test sets.
        rollout: the file from ``rollout_mesh_to_netcdf``.
        metrics: its Dataset from ``evaluate_mesh_rollout``; None: :func:`write_mesh_report` evaluates it.
    """

    name: str
    rollout: Path
    metrics: xr.Dataset | None = None


def _as_result(item) -> MeshEvalResult:
    if isinstance(item, MeshEvalResult):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
        return MeshEvalResult(item[0], Path(item[1]))
    raise ValueError(f"results: expected (name, rollout path) pairs or MeshEvalResult, got {item!r}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def report_stem(name: str, attrs=None) -> str:
    """``<slug>[_mirror][_rot<angle>]``: the stem of a report's files for one model and test set
    (``probe_<stem>.png``, ``snapshots_<stem>.png``, ``metrics_<stem>.nc``); ``attrs``: the rollout's
    ``rotation_deg`` and ``mirror`` (none: the original domain)."""
    attrs = attrs or {}
    angle = float(attrs.get("rotation_deg", 0.0) or 0.0)
    mirror = bool(int(attrs.get("mirror", 0) or 0))
    rot = f"_rot{angle:g}".replace("-", "m").replace(".", "p") if angle else ""
    return _slug(name) + ("_mirror" if mirror else "") + rot


def _at(ds: xr.Dataset, lead: int, var: str) -> float:
    hit = np.flatnonzero(ds["lead_time"].values == lead)
    return float(ds[var].values[hit[0]]) if hit.size else math.nan


def mesh_summary_rows(results: Sequence[tuple[str, xr.Dataset]]) -> list[dict]:
    """One summary row per ``(model name, metrics from evaluate_mesh_rollout)`` (keys:
    ``MESH_SUMMARY_COLUMNS``).

    ``rmse_1``, ``rmse_50``, ``rmse_all``: the pooled ``rmse_*_mean`` (raw units; the table shows them
    ``x 10^3``); ``rel_l2_1``, ``rel_l2_50``: ``rel_l2_mean`` at leads 1 and 50; ``truth_leads``: the
    leads with truth (``rmse_all``'s horizon); ``diverged``: the number of diverged samples,
    ``first_divergence`` the earliest divergence lead (-1: none); ``strouhal_*``: the means over the
    samples with a finite value, ``strouhal_pred_samples`` how many samples have a predicted one. Floats
    are NaN where undefined.
    """
    rows = []
    for name, ds in results:
        div = np.asarray(ds["diverged_at"].values)
        rows.append(
            {
                "model": name,
                "test_set": describe_test_set(ds.attrs),
                "samples": int(ds.sizes["sample"]),
                "steps": int(ds["lead_time"].values[-1]),
                "truth_leads": int(ds.attrs.get("truth_leads", 0)),
                "rmse_1": float(ds["rmse_1_mean"]),
                "rmse_50": float(ds["rmse_50_mean"]),
                "rmse_all": float(ds["rmse_all_mean"]),
                "rel_l2_1": _at(ds, 1, "rel_l2_mean"),
                "rel_l2_50": _at(ds, 50, "rel_l2_mean"),
                "diverged": int((div >= 0).sum()),
                "first_divergence": int(div[div >= 0].min()) if (div >= 0).any() else -1,
                "strouhal_pred": float(ds["strouhal_pred_mean"]),
                "strouhal_pred_samples": int(np.isfinite(ds["strouhal_pred"].values).sum()),
                "strouhal_truth": float(ds["strouhal_truth_mean"]),
                "strouhal_lift": float(ds["strouhal_lift_mean"]),
            }
        )
    return rows


def _fmt(v: float, scale: float = 1.0) -> str:
    return "–" if not math.isfinite(v) else f"{v * scale:.3g}"


def format_mesh_summary(rows: Sequence[dict]) -> str:
    """The summary rows as a markdown table (also readable as plain text); RMSEs ``x 10^-3``."""
    head = [
        "model",
        "test set",
        "samples",
        "steps",
        "RMSE@1 ×10⁻³",
        "RMSE@50 ×10⁻³",
        "RMSE all ×10⁻³ (leads)",
        "rel L2 @1",
        "rel L2 @50",
        "diverged (first)",
        "St pred (samples)",
        "St truth",
        "St lift",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in rows:
        first = f" ({r['first_divergence']})" if r["first_divergence"] >= 0 else ""
        cells = [
            r["model"],
            r["test_set"],
            str(r["samples"]),
            str(r["steps"]),
            _fmt(r["rmse_1"], 1e3),
            _fmt(r["rmse_50"], 1e3),
            f"{_fmt(r['rmse_all'], 1e3)} ({r['truth_leads']})",
            _fmt(r["rel_l2_1"]),
            _fmt(r["rel_l2_50"]),
            f"{r['diverged']}/{r['samples']}{first}",
            f"{_fmt(r['strouhal_pred'])} ({r['strouhal_pred_samples']}/{r['samples']})",
            _fmt(r["strouhal_truth"]),
            _fmt(r["strouhal_lift"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_mesh_report(
    results: Sequence[MeshEvalResult | tuple[str, str | os.PathLike]],
    out_dir: str | os.PathLike,
    *,
    title: str = "Mesh rollout evaluation",
    truth_path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> list[dict]:
    """Evaluate rollouts and write ``report.md`` with its figures and metric files into ``out_dir``.

    Files: ``report.md``; ``error_curves.png`` (``rmse_mean`` against lead, every rollout, log y) and
    ``rel_l2_curves.png``; per rollout ``metrics_<stem>.nc`` (``save_mesh_metrics``),
    ``snapshots_<stem>.png`` (the speed on the first sample's mesh) and ``probe_<stem>.png`` (``v`` at its
    probe), with ``<stem>`` the model's name in lower case, ``_mirror`` and ``_rot<angle>`` for the
    transformed test sets. Every output path is checked and every rollout evaluated before anything is
    written.

    Args:
        results: ``(model name, rollout file)`` pairs or :class:`MeshEvalResult`, one per rollout.
        out_dir: the folder (created if missing; its parent must exist).
        title: the report's title.
        truth_path: the data file of every rollout; each rollout's ``data_file`` attribute when None.
        overwrite: replace existing files.

    Returns:
        The summary rows (:func:`mesh_summary_rows`), for a CLI to print with :func:`format_mesh_summary`.

    Raises:
        ValueError: no results, a malformed entry, or two rollouts with the same model name and test set.
        OutputError: the parent of ``out_dir`` is missing or a file exists without ``overwrite``.
        DataFileError: a rollout or data file is missing, malformed, or they do not match.
    """
    results = [_as_result(r) for r in results]
    if not results:
        raise ValueError("write_mesh_report: expected at least one (name, rollout) pair")
    attrs = []
    for r in results:
        if r.metrics is not None:
            attrs.append(dict(r.metrics.attrs))
        else:
            with open_netcdf(r.rollout) as ds:
                attrs.append(dict(ds.attrs))
    stems = [report_stem(r.name, a) for r, a in zip(results, attrs, strict=True)]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ValueError(f"write_mesh_report: two rollouts share a model name and test set: {dupes}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: is a file; expected a folder")
    if not out_dir.parent.is_dir():
        raise OutputError(f"{out_dir}: parent folder {out_dir.parent} does not exist (create it first)")
    out_dir.mkdir(exist_ok=True)
    report = out_dir / "report.md"
    figures = {"rmse": out_dir / "error_curves.png", "rel_l2": out_dir / "rel_l2_curves.png"}
    per = {
        s: {
            "metrics": out_dir / f"metrics_{s}.nc",
            "snapshots": out_dir / f"snapshots_{s}.png",
            "probe": out_dir / f"probe_{s}.png",
        }
        for s in stems
    }
    for p in [report, *figures.values(), *(p for files in per.values() for p in files.values())]:
        check_output_path(p, overwrite=overwrite)

    metrics = [
        r.metrics if r.metrics is not None else evaluate_mesh_rollout(r.rollout, truth_path) for r in results
    ]
    for s, m in zip(stems, metrics, strict=True):
        save_mesh_metrics(m, per[s]["metrics"], overwrite=overwrite)
    pairs = [(r.name, m) for r, m in zip(results, metrics, strict=True)]
    plot_mesh_error_curves(
        pairs, figures["rmse"], metric="rmse", title="velocity RMSE against lead time", overwrite=overwrite
    )
    plot_mesh_error_curves(
        pairs, figures["rel_l2"], metric="rel_l2", title="relative L2 error against lead time",
        overwrite=overwrite,
    )  # fmt: skip
    for s, r, m in zip(stems, results, metrics, strict=True):
        plot_mesh_snapshots(r.rollout, per[s]["snapshots"], truth_path=truth_path, overwrite=overwrite)
        plot_probe_signal(m, per[s]["probe"], name=r.name, overwrite=overwrite)

    rows = mesh_summary_rows(pairs)
    first = metrics[0].attrs
    truth_files = sorted({str(m.attrs.get("truth_file", "?")) for m in metrics})
    lines = [
        f"# {title}",
        "",
        f"Written {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} by `sim.evaluate`. "
        f"Data: {', '.join(f'`{t}`' for t in truth_files)}; rollouts from frame {first.get('start', '?')} "
        f"(history {first.get('history', '?')}, stride {first.get('stride', '?')}).",
        "",
        "RMSE of the velocity over each sample's real mesh nodes and both components; *RMSE@h* is "
        "MeshGraphNets' rollout RMSE `sqrt(mean squared error over leads 1..h)`, per sample, pooled over "
        "the samples (mean of their squared RMSEs), shown ×10⁻³ (MeshGraphNets' CylinderFlow figures: "
        "2.34, 6.3, 40.88 ×10⁻³ at 1, 50 and all steps of a trajectory, on their data and velocity "
        "scale: orientation only). *All*: every lead with a true frame (their number in brackets). *rel L2*: "
        "`||pred - truth|| / ||truth||` per sample, mean over the samples. Samples that diverged (NaN/Inf "
        "or a blow-up, the rollout files' `diverged_at`) drop out of the means from their divergence on. "
        "*St*: the Strouhal number `f D / U_mean` of the transverse velocity at a probe two diameters "
        "behind the cylinder's centre (the nearest mesh node), predicted and true, over the leads with "
        "truth; *St lift* the truth's from the stored lift coefficient, a cross-check; each a mean over "
        "the samples whose signal oscillates (three upward zero crossings at least). A rotated / mirrored "
        "test set ran the model on the transformed mesh and compares its output, transformed back, with "
        "the same truth: an exactly E(2)-equivariant model scores the same as on the original.",
        "",
        format_mesh_summary(rows),
        "",
        "## Figures",
        "",
        f"![velocity RMSE against lead time]({figures['rmse'].name})",
        "",
        f"![relative L2 error against lead time]({figures['rel_l2'].name})",
        "",
    ]
    for s, r, row in zip(stems, results, rows, strict=True):
        label = f"{r.name}, {row['test_set']}"
        snap, probe = per[s]["snapshots"].name, per[s]["probe"].name
        lines += [f"[Snapshots: {label}]({snap}) · [probe signal: {label}]({probe})", ""]
    lines += ["## Files", "", "| model | test set | metrics | rollout |", "|---|---|---|---|"]
    for s, r, row in zip(stems, results, rows, strict=True):
        nc = per[s]["metrics"]
        lines.append(
            f"| {r.name} | {row['test_set']} | [{nc.name}]({nc.name}) | "
            f"[{Path(r.rollout).name}]({relative_link(r.rollout, out_dir)}) |"
        )
    with atomic_output(report, overwrite=overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return rows
