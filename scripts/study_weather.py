#!/usr/bin/env python
"""Study: weather surrogates on shallow-water data, SO(3)-equivariant GraphCast vs GraphCast-like vs SFNO.

The three models of configs/weather/ at equal budget (the same steps, batch, learning rate, unroll
curriculum; about 0.55 M parameters each) on the ERA5-style shallow-water data of
configs/data/swe_study.yaml (32 x 64, 6-hourly; trajectories 0-9 train, 10 validates, 11 tests). Reported
per model:

* the latitude-weighted RMSE of geopotential (the layer's ``g h``, a stand-in for z500) at 1, 3 and 5 days
  from daily initial times of the test trajectory, against persistence;
* stability over a simulated year: one rollout of ``--year-steps`` 6-hourly steps (1460) from the test
  trajectory's first state, streamed to disk; the step where it diverges (if it does) and its kinetic
  energy after the year relative to its first day (the truth's shallow-water flow keeps its energy to
  within its hyperdiffusion);
* generalization to a planet whose rotation axis is tilted by 45 degrees (configs/data/swe_study_tilted.yaml,
  never trained on): the same RMSE at 1, 3 and 5 days. The equivariant model sees the axis as an input
  vector; the GraphCast-like model and SFNO see its components as scalars (the forcing channels).

    python scripts/study_weather.py                                   # generate, train, roll out, report
    python scripts/study_weather.py --steps 500 --reuse               # a shorter budget; reuse finished runs
    python scripts/study_weather.py --quick --results -               # a smoke run on tiny data

Writes OUT/<model>/ (runs and rollouts), OUT/report_test/, OUT/report_tilted/ (``write_weather_report``)
and the ``study_weather`` section of docs/results.md (``--results``, ``-`` prints only).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.config import load_config, read_yaml  # noqa: E402
from sim.data.swe import SWEDataConfig, generate_swe, swe_output_paths  # noqa: E402
from sim.data.weather import WeatherPrepareConfig, prepare_weather  # noqa: E402
from sim.evaluate import reusable_rollout  # noqa: E402
from sim.evaluate.weather_report import format_weather_summary, write_weather_report  # noqa: E402
from sim.evaluate.weather_rollout import rollout_weather_to_netcdf  # noqa: E402
from sim.io import publish_section  # noqa: E402
from sim.runtime import describe_machine, load_average, tune_cpu_allocator  # noqa: E402
from sim.train import ExperimentConfig, load_stepper  # noqa: E402
from sim.train.engine import train_or_reuse  # noqa: E402

MODELS = {  # key: (display name, experiment config)
    "equivariant_graphcast": (
        "SO(3)-equivariant GraphCast",
        ROOT / "configs/weather/equivariant_graphcast.yaml",
    ),
    "graphcast": ("GraphCast-like", ROOT / "configs/weather/graphcast.yaml"),
    "sfno": ("SFNO", ROOT / "configs/weather/sfno.yaml"),
}
DATA = ROOT / "configs/data/swe_study.yaml"
TILTED = ROOT / "configs/data/swe_study_tilted.yaml"
QUICK_DATA = ["grid.nlat=16", "grid.nlon=32", "solver.dt=3600", "duration_days=3", "sample_spacing_days=4"]
QUICK_FORECAST_DAYS = 1.0
QUICK_MODEL = ["model.latent=8", "model.blocks=1", "model.mesh_splits=2"]
HEADLINE_DAYS = (1, 3, 5)

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--out", default="runs/study_weather", help="output folder")
parser.add_argument("--data-dir", default="data/swe_study", help="where the study data are (or go)")
parser.add_argument("--steps", type=int, default=None, help="training steps (default: the configs')")
parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="which models")
parser.add_argument("--forecast-days", type=float, default=5.0, help="length of the test rollouts")
parser.add_argument("--year-steps", type=int, default=1460, help="steps of the stability rollout (a year)")
parser.add_argument("--year-save-every", type=int, default=4, help="save every k-th step of it (daily)")
parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
parser.add_argument("--results", default=str(ROOT / "docs/results.md"), help="markdown file, or - to print")
parser.add_argument("--reuse", action="store_true", help="keep finished training runs of the same config")
parser.add_argument("--overwrite", action="store_true", help="regenerate data, replace runs and rollouts")
parser.add_argument("--quick", action="store_true", help="tiny data and models, a few steps")
parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _data(
    config_path: Path, folder: Path, *, holdout: int, quick: bool, overwrite: bool, progress: bool
) -> Path:
    """Generate the trajectories (unless there) and prepare their canonical store, with statistics over all
    but the last ``holdout`` trajectories; returns the store."""
    overrides = [f"output={folder / 'swe.nc'}"]
    if quick:
        overrides += [*QUICK_DATA, f"samples={holdout + 2 if holdout else 1}"]
    config = load_config(SWEDataConfig, config_path, overrides)
    folder.mkdir(parents=True, exist_ok=True)
    if overwrite or not all(f.exists() for f in swe_output_paths(config)):
        generate_swe(config, overwrite=True, progress=progress)
    store = folder / "swe.zarr"
    if overwrite or not store.exists():
        start = np.datetime64(config.start, "h")
        last = config.samples - holdout - 1  # the last trajectory in the statistics
        end = start + np.timedelta64(round((last * config.spacing_days + config.duration_days) * 24), "h")
        prep = {"sources": [str(folder / "swe*.nc")], "train": {"start": str(start), "end": str(end)},
                "output": str(store)}  # fmt: skip
        prepare_weather(load_config(WeatherPrepareConfig, prep), overwrite=True, progress=progress)
    return store


def _trajectories(store: Path, period: tuple[str, str] | None = None) -> list[np.ndarray]:
    """The store's times in ``period`` (all when None), one array per trajectory: the trajectories are
    separated by gaps longer than the data step."""
    import xarray as xr

    with xr.open_zarr(store) as ds:
        times = ds["time"].values
    if period is not None:
        times = times[(times >= np.datetime64(period[0])) & (times <= np.datetime64(period[1]))]
    return np.split(times, np.flatnonzero(np.diff(times) > np.diff(times).min()) + 1)


def _periods(store: Path) -> tuple[tuple[str, str], tuple[str, str], tuple[str, str]]:
    """Train, validation and test periods of the study store: all trajectories but the last two, the
    second to last, the last."""
    segments = _trajectories(store)
    if len(segments) < 3:
        raise SystemExit(f"{store}: {len(segments)} trajectories; the study needs at least 3")
    iso = lambda t: str(t)[:19]  # noqa: E731
    return (
        (iso(segments[0][0]), iso(segments[-3][-1])),
        (iso(segments[-2][0]), iso(segments[-2][-1])),
        (iso(segments[-1][0]), iso(segments[-1][-1])),
    )


def _init_times(
    store: Path, period: tuple[str, str] | None, days: float, *, history: int, every: int
) -> list:
    """Every ``every``-th state of each trajectory in ``period`` from which a ``history``-state window starts
    and whose ``days``-day forecast stays inside the trajectory (so every lead has a truth to score)."""
    chosen = []
    for seg in _trajectories(store, period):
        usable = seg[history - 1 :]
        usable = usable[usable + np.timedelta64(round(days * 86400), "s") <= seg[-1]]
        chosen += [str(t) for t in usable[::every]]
    return chosen


def main(argv: list[str] | None = None) -> list[dict]:
    args = parser.parse_args(argv)
    command = "python scripts/study_weather.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    tune_cpu_allocator()
    load_before = load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data_dir = Path(args.data_dir) if not args.quick else out / "data"

    kw = dict(quick=args.quick, overwrite=args.overwrite, progress=progress)
    store = _data(DATA, data_dir, holdout=2, **kw)  # statistics over the training trajectories only
    train_period, val_period, test_period = _periods(store)
    tilted = _data(TILTED, Path(str(data_dir) + "_tilted"), holdout=0, **kw)
    step_hours = 6.0
    if args.quick:
        args.forecast_days = QUICK_FORECAST_DAYS
    forecast_steps = round(args.forecast_days * 24 / step_hours)
    year_steps = 8 if args.quick else args.year_steps

    timings, test_rollouts, tilted_rollouts, year_rollouts = {}, [], [], []
    for key in args.models:
        name, experiment = MODELS[key]
        mapping = read_yaml(experiment)
        mapping["data"] = {
            **mapping["data"],
            "path": str(store),
            "train_period": {"start": train_period[0], "end": train_period[1]},
            "val_period": {"start": val_period[0], "end": val_period[1]},
        }
        overrides = [f"train.device={device}"]
        if args.quick:
            overrides += [o for o in QUICK_MODEL if key != "sfno" or "mesh" not in o]
            overrides += ["model.vectors=2"] if key == "equivariant_graphcast" else []
            overrides += ["train.steps=2", "train.val_every=2", "train.checkpoint_every=2",
                          "train.log_every=1", "train.unroll=1", "train.unroll_every=0",
                          "train.warmup_steps=0"]  # fmt: skip
        elif args.steps is not None:
            unroll_every = max(1, args.steps // 5)
            overrides += [f"train.steps={args.steps}", f"train.val_every={args.steps}",
                          f"train.checkpoint_every={min(args.steps, 100)}",
                          f"train.unroll_every={unroll_every}",
                          f"train.warmup_steps={min(100, args.steps // 10)}"]  # fmt: skip
        config = load_config(ExperimentConfig, mapping, overrides)
        run = out / key
        print(f"== {name} -> {run}")
        checkpoint, seconds, reused = train_or_reuse(
            config, run, reuse=args.reuse, overwrite=args.overwrite, progress=progress
        )
        if reused:
            print(f"reusing {checkpoint}")
        stepper, _, _ = load_stepper(checkpoint)
        params = stepper.model.num_parameters()
        common = dict(device=device, progress=progress, attrs={"model": name}, keep=args.reuse and checkpoint)
        path, per_step = _rollout(
            stepper, store, run / "rollout_test.nc", steps=forecast_steps,
            init_times=_init_times(store, test_period, args.forecast_days, history=stepper.history, every=4),
            **common,
        )  # fmt: skip
        test_rollouts.append((name, path))
        path, _ = _rollout(
            stepper, tilted, run / "rollout_tilted.nc", steps=forecast_steps,
            init_times=_init_times(tilted, None, args.forecast_days, history=stepper.history, every=4),
            **common,
        )  # fmt: skip
        tilted_rollouts.append((name, path))
        path, _ = _rollout(
            stepper, store, run / "rollout_year.nc", steps=year_steps, period=test_period, max_inits=1,
            save_every=args.year_save_every if not args.quick else 1, **common,
        )  # fmt: skip
        year_rollouts.append((name, path))
        timings[name] = {"params": params, "train_seconds": seconds, "step_seconds": per_step}

    rows = write_weather_report(test_rollouts, out / "report_test", title="study_weather: test trajectory",
                                headline_days=HEADLINE_DAYS, overwrite=True)  # fmt: skip
    tilted_rows = write_weather_report(tilted_rollouts, out / "report_tilted", truth=tilted,
                                       title="study_weather: tilted rotation axis",
                                       headline_days=HEADLINE_DAYS, overwrite=True)  # fmt: skip
    year_rows = write_weather_report(year_rollouts, out / "report_year", title="study_weather: one year",
                                     headline_days=HEADLINE_DAYS, overwrite=True)  # fmt: skip
    print(format_weather_summary(rows))
    print(format_weather_summary(tilted_rows))
    print(format_weather_summary(year_rows))

    head = "geopotential@500"
    cols = " | ".join(f"{d} d" for d in HEADLINE_DAYS)

    def rmse(row) -> str:
        return " | ".join(_fmt(row.get(f"rmse_{head}_{d}d")) for d in HEADLINE_DAYS)

    by_name = lambda rs: {r["model"]: r for r in rs}  # noqa: E731
    test, tilt, year = by_name(rows), by_name(tilted_rows), by_name(year_rows)
    lines = [
        f"## Weather on the sphere: {' vs '.join(MODELS[k][0] for k in args.models)} "
        "(`scripts/study_weather.py`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe_machine(device)}; 1-minute load average {load_before} at the start, "
        f"{load_average()} at the end  ",
        f"Data: `{store}` (shallow water, {_grid(store)}, 6-hourly); training {train_period[0]} to "
        f"{train_period[1]}, validation {val_period[0]} to {val_period[1]}, test {test_period[0]} to "
        f"{test_period[1]} (never trained on); tilted-axis test set `{tilted}`.  ",
        f"Rollouts: {forecast_steps} steps ({args.forecast_days:g} days) from every 4th state (daily) of the "
        f"test trajectory and of the tilted set whose forecast stays inside its trajectory; one rollout of "
        f"{year_steps} steps for stability.",
        "",
        "Latitude-weighted RMSE of geopotential (m²/s², the layer's g h) on the test trajectory:",
        "",
        f"| model | parameters | train time | ms per step | {cols} |",
        "|---|---:|---:|---:|" + "---:|" * len(HEADLINE_DAYS),
    ]
    for name, t in timings.items():
        lines.append(
            f"| {name} | {t['params']:,} | {_seconds(t['train_seconds'])} | {1e3 * t['step_seconds']:.1f} | "
            f"{rmse(test.get(name, {}))} |"
        )
    if "persistence" in test:
        lines.append(f"| persistence | – | – | – | {rmse(test['persistence'])} |")
    lines += [
        "",
        "The same on the planet whose rotation axis is tilted by 45° (never trained on):",
        "",
        f"| model | {cols} |",
        "|---|" + "---:|" * len(HEADLINE_DAYS),
    ]
    for name in [*timings, "persistence"]:
        if name in tilt:
            lines.append(f"| {name} | {rmse(tilt[name])} |")
    skill = {name: _skill(test, name, head) + _skill(tilt, name, head) for name in timings}
    lines += [
        "",
        "Skill over persistence, 1 − RMSE / persistence's RMSE (geopotential; 0: no better than persistence, "
        "1: perfect), on the test trajectory and on the tilted planet:",
        "",
        f"| model | {' | '.join(f'test {d} d' for d in HEADLINE_DAYS)} | "
        f"{' | '.join(f'tilted {d} d' for d in HEADLINE_DAYS)} |",
        "|---|" + "---:|" * (2 * len(HEADLINE_DAYS)),
    ]
    lines += [f"| {name} | " + " | ".join(_skill_cell(v) for v in sk) + " |" for name, sk in skill.items()]
    energy = {name: _energy_range(path) for name, path in year_rollouts}
    segments = _trajectories(store)
    truth_lo, truth_hi = _truth_energy_range(store, segments)
    truth_days = (len(segments[0]) - 1) * step_hours / 24
    lines += [
        "",
        f"Stability over {year_steps} steps ({year_steps * step_hours / 24:g} days); the kinetic energy "
        f"relative to the first saved day (the truth's trajectories, {truth_days:g} days each, stay within "
        f"{_fmt(truth_lo, 2)} to {_fmt(truth_hi, 2)} of their first state's):",
        "",
        "| model | diverged at step | kinetic energy, last day | lowest | highest |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in timings:
        r = year.get(name, {})
        d = r.get("diverged_at")
        lo, hi = energy.get(name, (math.nan, math.nan))
        lines.append(
            f"| {name} | {'none' if d in (None, -1) else d} | {_fmt(r.get('ke_ratio'), 3)} | {_fmt(lo, 3)} | "
            f"{_fmt(hi, 3)} |"
        )
    lines += ["", "Verdict:", "", *_verdicts(test, skill, year, HEADLINE_DAYS, head)]
    lines += [
        "",
        f"Reports with RMSE/bias curves, spectra, kinetic energy over the year and maps: "
        f"`{out / 'report_test' / 'report.md'}`, `{out / 'report_tilted' / 'report.md'}`, "
        f"`{out / 'report_year' / 'report.md'}`",
    ]
    if args.quick:
        lines += ["", "This was a `--quick` smoke run (tiny data and models): the numbers mean nothing."]
    publish_section(args.results, "study_weather", "\n".join(lines), title="Results")
    return rows


def _skill(rows: dict, name: str, head: str) -> tuple[float, ...]:
    """1 - RMSE / persistence's RMSE of ``head`` at the headline days (NaN where either is missing)."""
    ref = rows.get("persistence", {})
    return tuple(
        1.0 - rows.get(name, {}).get(f"rmse_{head}_{d}d", math.nan) / ref.get(f"rmse_{head}_{d}d", math.nan)
        for d in HEADLINE_DAYS
    )


def _skill_cell(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "–"


def _energy_range(path: Path) -> tuple[float, float]:
    """Lowest and highest kinetic energy of a rollout over its saved leads, relative to the first (mean over
    the initial times; NaN after a divergence is skipped)."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        ke = ds["kinetic_energy"].mean("init_time").values.astype(float)
    ke = ke[np.isfinite(ke)]
    if ke.size == 0 or ke[0] <= 0:
        return math.nan, math.nan
    return float(ke.min() / ke[0]), float(ke.max() / ke[0])


def _truth_energy_range(store: Path, segments: list[np.ndarray]) -> tuple[float, float]:
    """Lowest and highest kinetic energy of the store's trajectories (``segments``, their times) relative to
    each one's first state (area-weighted mean of ``(u^2 + v^2) / 2`` over the wind levels)."""
    import xarray as xr

    from sim.evaluate.weather_metrics import latitude_weights

    lo, hi = math.inf, -math.inf
    with xr.open_zarr(store) as ds:
        w = latitude_weights(np.asarray(ds["latitude"].values))[:, None]
        u = np.asarray(ds["u_component_of_wind"].values, np.float64)  # [T, (level,) nlat, nlon]
        v = np.asarray(ds["v_component_of_wind"].values, np.float64)
        ke = (0.5 * (u**2 + v**2) * w).mean(axis=(-2, -1))
        ke = ke.reshape(ke.shape[0], -1).mean(axis=1)  # [T]
        times = ds["time"].values
    for seg in segments:
        k = ke[np.isin(times, seg)]
        lo, hi = min(lo, k.min() / k[0]), max(hi, k.max() / k[0])
    return float(lo), float(hi)


def _verdicts(test: dict, skill: dict, year: dict, days: tuple[int, ...], head: str) -> list[str]:
    """The study's findings in a few lines, from its numbers."""
    names = list(skill)
    out = []
    best = []
    for d in days:
        scored = [(test.get(n, {}).get(f"rmse_{head}_{d}d", math.nan), n) for n in names]
        scored = [(v, n) for v, n in scored if math.isfinite(v)]
        if scored:
            best.append(f"{d} d {min(scored)[1]} ({_fmt(min(scored)[0])})")
    if best:
        out.append(f"- Lowest RMSE on the test trajectory: {', '.join(best)}.")
    k = len(days)
    kept = [n for n in names if all(math.isfinite(v) and v > 0 for v in skill[n][k:])]
    lost = [n for n in names if n not in kept]
    if kept:
        out.append(
            "- Better than persistence at every lead on the tilted planet (never trained on): "
            + ", ".join(f"{n} (skill {_skill_cell(skill[n][k])} at {days[0]} d)" for n in kept)
            + "."
        )
    if lost:
        out.append(
            "- No better than persistence at some lead on the tilted planet: "
            + ", ".join(
                f"{n} (skill at {days[0]} d {_skill_cell(skill[n][0])} on the test trajectory, "
                f"{_skill_cell(skill[n][k])} tilted)"
                for n in lost
            )
            + "."
        )
    diverged = {n: year.get(n, {}).get("diverged_at") for n in names}
    bad = {n: s for n, s in diverged.items() if s not in (None, -1)}
    stable = [n for n in names if n not in bad and n in year]
    if stable:
        out.append(f"- No divergence over the year: {', '.join(stable)}.")
    if bad:
        out.append("- Diverged: " + ", ".join(f"{n} at step {s}" for n, s in bad.items()) + ".")
    return out


def _rollout(
    stepper,
    data: Path,
    path: Path,
    *,
    steps: int,
    keep: Path | bool,
    save_every: int = 1,
    init_times: list | None = None,
    **kw,
) -> tuple[Path, float]:
    """Roll out into ``path``, or keep the file there when ``keep`` (the checkpoint) is older than it and it
    has the same data, steps, saved leads and initial times; returns the file and its wall seconds per
    model step and initial time (the rollout records its own wall time)."""
    import xarray as xr

    made = dict(data_file=str(data), steps=steps, save_every=save_every)
    coords = {"init_time": np.array(init_times, "M8[ns]")} if init_times is not None else None
    if reusable_rollout(path, keep or None, made, coords) is None:
        kw.update(steps=steps, save_every=save_every, init_times=init_times, overwrite=True)
        rollout_weather_to_netcdf(stepper, data, path, **kw)
    else:
        print(f"reusing {path}")
    with xr.open_dataset(path) as ds:
        return path, float(ds.attrs["wall_seconds"]) / (steps * ds.sizes["init_time"])


def _grid(store: Path) -> str:
    import xarray as xr

    with xr.open_zarr(store) as ds:
        return f"{ds.sizes['latitude']} x {ds.sizes['longitude']}"


def _fmt(value, digits: int = 4) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _seconds(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.0f} s"


if __name__ == "__main__":
    main()
