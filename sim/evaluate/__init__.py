"""Long rollouts streamed to disk, metrics per lead time, plots and a markdown report.

rollout_to_netcdf(stepper, data, "p4m.nc", steps=1000)          # autoregressive, chunked, atomic
metrics = evaluate_rollout("p4m.nc", data)                      # per lead (and sample)
save_metrics(metrics, "p4m_metrics.nc")                         # + p4m_metrics.csv
write_report([EvalResult("P4M G-CNN", metrics, rollout=Path("p4m.nc"))], "runs/eval")

Meshes (flow past a cylinder): rollout_mesh_to_netcdf (sim.evaluate.mesh_rollout), then
evaluate_mesh_rollout("egnn.nc") or write_mesh_report([("EGNN", "egnn.nc"), ("EGNN", "egnn_rot37.nc")], dir).

Weather: WeatherBench2's metrics on forecasts in its layout (init_time x lead_time), in
sim.evaluate.weather_metrics (whose rmse/bias/acc are per variable and level):
evaluate_forecast(forecast, truth, climatology=clim), zonal_energy_spectrum(ds),
persistence_forecast(truth, init_times, lead_times); rollout_weather_to_netcdf(stepper, store, "r.nc",
steps=1460) streams a year of 6-hourly steps, write_weather_report([("EqGC", "r.nc")], dir) scores it.

Rollout files record their wall time; reusable_rollout(path, checkpoint, attrs) says whether a study may keep
one (newer than its checkpoint, made with the same settings) instead of rolling out again.
"""

from sim.evaluate._common import element_name, reusable_rollout
from sim.evaluate.mesh_metrics import evaluate_mesh_rollout, rollout_gap, save_mesh_metrics
from sim.evaluate.mesh_plots import plot_mesh_error_curves, plot_mesh_snapshots, plot_probe_signal
from sim.evaluate.mesh_report import (
    MESH_SUMMARY_COLUMNS,
    MeshEvalResult,
    format_mesh_summary,
    mesh_summary_rows,
    report_stem,
    write_mesh_report,
)
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
from sim.evaluate.weather_metrics import (
    climatology_forecast,
    evaluate_forecast,
    latitude_weights,
    persistence_forecast,
    write_metrics_netcdf,
    zonal_energy_spectrum,
)
from sim.evaluate.weather_report import format_weather_summary, write_weather_report
from sim.evaluate.weather_rollout import rollout_weather_to_netcdf

__all__ = [
    "rollout_weather_to_netcdf",
    "write_weather_report",
    "format_weather_summary",
    "zonal_energy_spectrum",
    "write_metrics_netcdf",
    "persistence_forecast",
    "latitude_weights",
    "evaluate_forecast",
    "climatology_forecast",
    "MESH_SUMMARY_COLUMNS",
    "SUMMARY_COLUMNS",
    "EvalResult",
    "MeshEvalResult",
    "correlation",
    "element_name",
    "reusable_rollout",
    "energy_spectrum",
    "enstrophy",
    "evaluate_mesh_rollout",
    "evaluate_rollout",
    "format_mesh_summary",
    "format_summary",
    "mesh_summary_rows",
    "metrics_csv",
    "plot_error_curves",
    "plot_mesh_error_curves",
    "plot_mesh_snapshots",
    "plot_probe_signal",
    "plot_snapshots",
    "plot_spectra",
    "relative_l2",
    "report_stem",
    "rmse",
    "rollout_gap",
    "rollout_to_netcdf",
    "save_mesh_metrics",
    "save_metrics",
    "summary_rows",
    "write_mesh_report",
    "write_report",
]
