"""Long rollouts streamed to disk, metrics per lead time, plots and a markdown report.

rollout_to_netcdf(stepper, data, "p4m.nc", steps=1000)          # autoregressive, chunked, atomic
metrics = evaluate_rollout("p4m.nc", data)                      # per lead (and sample)
save_metrics(metrics, "p4m_metrics.nc")                         # + p4m_metrics.csv
write_report([EvalResult("P4M G-CNN", metrics, rollout=Path("p4m.nc"))], "runs/eval")
"""

from sim.evaluate._common import element_name
from sim.evaluate.metrics import (
    correlation,
    energy_spectrum,
    enstrophy,
    evaluate_rollout,
    metrics_csv,
    relative_l2,
    rmse,
    save_metrics,
)
from sim.evaluate.plots import plot_error_curves, plot_snapshots, plot_spectra
from sim.evaluate.report import SUMMARY_COLUMNS, EvalResult, format_summary, summary_rows, write_report
from sim.evaluate.rollout import rollout_to_netcdf

__all__ = [
    "SUMMARY_COLUMNS",
    "EvalResult",
    "correlation",
    "element_name",
    "energy_spectrum",
    "enstrophy",
    "evaluate_rollout",
    "format_summary",
    "metrics_csv",
    "plot_error_curves",
    "plot_snapshots",
    "plot_spectra",
    "relative_l2",
    "rmse",
    "rollout_to_netcdf",
    "save_metrics",
    "summary_rows",
    "write_report",
]
