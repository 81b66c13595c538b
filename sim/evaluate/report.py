"""A short markdown report of rollout evaluations: a summary table per model and test set, figures, files.

``results`` is a list of :class:`EvalResult`, one per (model, test set): the model's name, the metrics
Dataset of ``evaluate_rollout`` and, optionally, the rollout file (for the snapshot figure). Entries of
the same model on a transformed test set (a rollout made with ``element``) carry the same ``name``;
the element is read from the metrics' attributes::

    results = [
        EvalResult("P4M G-CNN", evaluate_rollout("p4m.nc", data), rollout=Path("p4m.nc")),
        EvalResult("P4M G-CNN", evaluate_rollout("p4m_rot90.nc", data), rollout=Path("p4m_rot90.nc")),
        EvalResult("CNN", evaluate_rollout("cnn.nc", data), rollout=Path("cnn.nc")),
    ]
    rows = write_report(results, "runs/eval")
    print(format_summary(rows))
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

from sim.evaluate._common import element_name, relative_link
from sim.evaluate.metrics import save_metrics
from sim.evaluate.plots import plot_error_curves, plot_snapshots, plot_spectra
from sim.io import OutputError, atomic_output, check_output_path

__all__ = ["SUMMARY_COLUMNS", "EvalResult", "format_summary", "summary_rows", "write_report"]

#: Keys of each summary row, in table order.
SUMMARY_COLUMNS = (
    "model",
    "test_set",
    "samples",
    "steps",
    "rel_l2_1",
    "rel_l2_10",
    "rel_l2_end",
    "rel_l2_avg",
    "end_lead",
    "enstrophy_ratio_10",
    "enstrophy_ratio_end",
    "time_to_thresholds",
    "diverged",
    "first_divergence",
)


@dataclass(frozen=True)
class EvalResult:
    """One evaluated rollout: a model on one test set.

    Attributes:
        name: the model's name, e.g. ``"P4M G-CNN"``; the same for its transformed test sets.
        metrics: the Dataset from ``evaluate_rollout``.
        rollout: the rollout file, for the snapshot figure (None: no snapshots).
    """

    name: str
    metrics: xr.Dataset
    rollout: Path | None = None

    @property
    def element(self) -> int:
        """The D4 element of the test set (0: the original)."""
        return int(self.metrics.attrs.get("element", 0))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _file_stem(result: EvalResult) -> str:
    return _slug(result.name) + (f"_g{result.element}" if result.element else "")


def _at(ds: xr.Dataset, lead: int, var: str = "rel_l2_mean") -> float:
    leads = ds["lead_time"].values
    hit = np.nonzero(leads == lead)[0]
    return float(ds[var].values[hit[0]]) if hit.size and var in ds.variables else math.nan


def summary_rows(results: Sequence[EvalResult]) -> list[dict]:
    """One summary row per result (keys: ``SUMMARY_COLUMNS``).

    ``rel_l2_1``, ``rel_l2_10``: the mean relative L2 error at leads 1 and 10; ``rel_l2_end`` at
    ``end_lead``, the last lead with truth; ``rel_l2_avg`` averaged over the leads with truth (each the
    mean over the samples still finite there); ``enstrophy_ratio_10``, ``enstrophy_ratio_end``: the
    predicted over the true mean enstrophy at lead 10 and at ``end_lead`` (below 1: the surrogate damps the
    flow; above: it amplifies small scales); ``time_to_thresholds``: ``{threshold: first lead where the
    mean crosses it, or -1}``; ``diverged``: the number of diverged samples; ``first_divergence``: the
    earliest divergence lead, -1 if none. Floats are NaN where undefined.
    """
    rows = []
    for r in results:
        ds = r.metrics
        truth_leads = int(ds.attrs.get("truth_leads", ds.sizes["lead_time"]))
        end = min(truth_leads, int(ds["lead_time"].values[-1]))
        mean = ds["rel_l2_mean"].values
        with_truth = mean[ds["lead_time"].values <= end]
        finite = with_truth[np.isfinite(with_truth)]
        div = ds["diverged_at"].values
        rows.append(
            {
                "model": r.name,
                "test_set": "original" if r.element == 0 else element_name(r.element),
                "samples": int(ds.sizes["sample"]),
                "steps": int(ds["lead_time"].values[-1]),
                "rel_l2_1": _at(ds, 1),
                "rel_l2_10": _at(ds, 10),
                "rel_l2_end": _at(ds, end) if end >= 1 else math.nan,
                "rel_l2_avg": float(finite.mean()) if finite.size else math.nan,
                "end_lead": end,
                "enstrophy_ratio_10": _at(ds, 10, "enstrophy_ratio_mean"),
                "enstrophy_ratio_end": _at(ds, end, "enstrophy_ratio_mean") if end >= 1 else math.nan,
                "time_to_thresholds": {
                    float(t): int(v)
                    for t, v in zip(ds["threshold"].values, ds["time_to_threshold_mean"].values, strict=True)
                },
                "diverged": int((div >= 0).sum()),
                "first_divergence": int(div[div >= 0].min()) if (div >= 0).any() else -1,
            }
        )
    return rows


def _fmt(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v:.3g}"


def _lead(v: int) -> str:
    return "never" if v < 0 else str(v)


def format_summary(rows: Sequence[dict]) -> str:
    """The summary rows as a markdown table (also readable as plain text)."""
    thresholds = sorted({t for r in rows for t in r["time_to_thresholds"]})
    head = (
        ["model", "test set", "rel L2 @1", "rel L2 @10", "rel L2 @end (lead)", "rel L2 avg"]
        + ["enstrophy ratio @10", "enstrophy ratio @end"]
        + [f"steps to {t:g}" for t in thresholds]
        + ["diverged", "first divergence"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in rows:
        cells = [
            r["model"],
            r["test_set"],
            _fmt(r["rel_l2_1"]),
            _fmt(r["rel_l2_10"]),
            f"{_fmt(r['rel_l2_end'])} ({r['end_lead']})",
            _fmt(r["rel_l2_avg"]),
            _fmt(r.get("enstrophy_ratio_10", math.nan)),
            _fmt(r.get("enstrophy_ratio_end", math.nan)),
            *(_lead(r["time_to_thresholds"].get(t, -1)) for t in thresholds),
            f"{r['diverged']}/{r['samples']}",
            _lead(r["first_divergence"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    results: Sequence[EvalResult],
    out_dir: str | os.PathLike,
    *,
    title: str = "Rollout evaluation",
    overwrite: bool = False,
) -> list[dict]:
    """Write ``report.md`` with its figures and metric files into ``out_dir``.

    Files: ``report.md``; ``error_curves.png`` (relative L2 against lead, every model, transformed test
    sets dashed), ``correlation.png`` and ``enstrophy_ratio.png``; ``spectra.png`` (the original test
    set); per result ``metrics_<name>[_g<element>].nc`` and ``.csv`` (``save_metrics``) and, with a
    rollout file, ``snapshots_<name>[_g<element>].png``. Everything is checked before anything is written.

    Args:
        results: one entry per (model, test set).
        out_dir: the folder (created if missing; its parent must exist).
        title: the report's title.
        overwrite: replace existing files.

    Returns:
        The summary rows (see :func:`summary_rows`), for a CLI to print with :func:`format_summary`.

    Raises:
        ValueError: no results, or two results with the same model name and test set.
        OutputError: the parent of ``out_dir`` is missing or a file exists without ``overwrite``.
    """
    results = list(results)
    if not results:
        raise ValueError("write_report: expected at least one EvalResult")
    stems = [_file_stem(r) for r in results]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ValueError(f"write_report: two results share a model name and test set: {dupes}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: is a file; expected a folder")
    if not out_dir.parent.is_dir():
        raise OutputError(f"{out_dir}: parent folder {out_dir.parent} does not exist (create it first)")
    out_dir.mkdir(exist_ok=True)

    report = out_dir / "report.md"
    figures = {
        "error": out_dir / "error_curves.png",
        "corr": out_dir / "correlation.png",
        "enstrophy": out_dir / "enstrophy_ratio.png",
        "spectra": out_dir / "spectra.png",
    }
    metric_files = {s: (out_dir / f"metrics_{s}.nc", out_dir / f"metrics_{s}.csv") for s in stems}
    snapshots = {s: out_dir / f"snapshots_{s}.png" for s, r in zip(stems, results, strict=True) if r.rollout}
    planned = [
        report,
        *figures.values(),
        *(p for pair in metric_files.values() for p in pair),
        *snapshots.values(),
    ]
    for p in planned:
        check_output_path(p, overwrite=overwrite)

    for s, r in zip(stems, results, strict=True):
        save_metrics(r.metrics, metric_files[s][0], csv=metric_files[s][1], overwrite=overwrite)
    original = {r.name: r.metrics for r in results if r.element == 0}
    transformed = {}
    extra = {}
    for r in results:
        if r.element == 0:
            continue
        if r.name in original and r.name not in transformed:
            transformed[r.name] = r.metrics
        else:  # a second transformed set of the same model, or one without its original: its own line
            extra[f"{r.name}, {element_name(r.element)}"] = r.metrics
    thresholds = sorted({float(t) for r in results for t in r.metrics["threshold"].values})
    plot_error_curves(
        {**original, **extra},
        figures["error"],
        transformed=transformed,
        thresholds=thresholds,
        title="relative L2 error against lead time",
        overwrite=overwrite,
    )
    plot_error_curves(
        {**original, **extra},
        figures["corr"],
        transformed=transformed,
        metric="correlation",
        title="correlation with the truth against lead time",
        overwrite=overwrite,
    )
    plot_error_curves(
        {**original, **extra},
        figures["enstrophy"],
        transformed=transformed,
        metric="enstrophy_ratio",
        thresholds=(1.0,),
        title="enstrophy of the prediction over the truth's, against lead time",
        overwrite=overwrite,
    )
    spectra_sets = original or {f"{r.name}, {element_name(r.element)}": r.metrics for r in results}
    try:
        plot_spectra(spectra_sets, figures["spectra"], overwrite=overwrite)
    except ValueError:  # no spectrum lead common to all models
        figures.pop("spectra")
    for s, r in zip(stems, results, strict=True):
        if r.rollout:
            plot_snapshots(r.rollout, snapshots[s], overwrite=overwrite)

    rows = summary_rows(results)
    first = results[0].metrics.attrs
    lines = [
        f"# {title}",
        "",
        f"Written {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} by `sim.evaluate`. "
        f"Data: `{first.get('truth_file', '?')}`, rollouts from frame {first.get('start', '?')} "
        f"(history {first.get('history', '?')}).",
        "",
        "Relative L2 error `||pred - truth|| / ||truth||`, mean over the samples still finite at that lead; "
        "*end* is the last lead with a true frame. *Steps to x*: the first lead at which the mean error "
        "reaches x. *Enstrophy ratio*: the prediction's mean enstrophy over the truth's; below 1 the "
        "surrogate damps (blurs) the flow, above 1 it piles up small scales, usually before a blow-up. "
        "*Diverged*: samples that became NaN/Inf or blew up (see the rollout files' "
        "`diverged_at`). A transformed test set rolls out from initial frames and forcing transformed by "
        "a D4 element and compares with the equally transformed truth: an exactly equivariant model "
        "scores the same as on the original.",
        "",
        format_summary(rows),
        "",
        "## Figures",
        "",
        f"![relative L2 error against lead time]({figures['error'].name})",
        "",
        f"![correlation against lead time]({figures['corr'].name})",
        "",
        f"![enstrophy ratio against lead time]({figures['enstrophy'].name})",
        "",
    ]
    if "spectra" in figures:
        lines += [f"![energy spectra]({figures['spectra'].name})", ""]
    for s, r in zip(stems, results, strict=True):
        if s in snapshots:
            label = f"{r.name}, {'original' if r.element == 0 else element_name(r.element)}"
            lines += [f"[Snapshots: {label}]({snapshots[s].name})", ""]
    lines += [
        "## Files",
        "",
        "| model | test set | metrics | per-lead CSV | rollout |",
        "|---|---|---|---|---|",
    ]
    for s, r, row in zip(stems, results, rows, strict=True):
        nc, csv = metric_files[s]
        roll = f"[{Path(r.rollout).name}]({relative_link(r.rollout, out_dir)})" if r.rollout else "–"
        lines.append(
            f"| {r.name} | {row['test_set']} | [{nc.name}]({nc.name}) | [{csv.name}]({csv.name}) | {roll} |"
        )
    with atomic_output(report, overwrite=overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return rows
