"""The ``sim`` command (also ``python -m sim``).

Every subcommand explains itself with ``--help``. Bad input (a config key, a path, a value) ends with a
one-line ``sim: error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sim import __version__

__all__ = ["main"]

_EPILOG_OVERRIDES = (
    "Config overrides are dotted KEY=VALUE pairs after the options, parsed as YAML values, e.g. "
    "solver.dt=2.5e-4 samples=64 forcing.kind=kolmogorov."
)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_config_options(sub: argparse.ArgumentParser) -> None:
    """The options every config-driven subcommand takes: progress, printing the config, overrides."""
    sub.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sub.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    sub.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim",
        description=(
            "Symmetry-preserving surrogate simulation of PDEs and weather: reference solvers that make "
            "training data, equivariant surrogates, long autoregressive rollouts."
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"sim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = sub.add_parser(
        "generate",
        help="solve a reference PDE and write training trajectories to netCDF",
        description="Solve a reference PDE for many initial conditions and write the trajectories to netCDF.",
        formatter_class=_Formatter,
    )
    gen_sub = gen.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    _add_generate(
        gen_sub,
        "ns2d",
        help="2D incompressible Navier-Stokes (vorticity) on the periodic square, as in the FNO paper",
        description=(
            "Solve 2D Navier-Stokes in vorticity form (pseudo-spectral, 2/3 dealiasing, Crank-Nicolson/Heun) "
            "from Gaussian-random-field initial conditions and store the trajectories, downsampled "
            "spectrally, in one netCDF file with dims (sample, time, y, x). Beside it go the resolved "
            "config (NAME.yaml) and a preview picture (NAME.png). The file is written under a temporary "
            "name and renamed when complete."
        ),
        example="sim generate ns2d --config configs/data/ns2d_demo.yaml --out runs/demo/ns2d_demo.nc",
        out_help="output file (default: the config's `output`)",
        func=_cmd_generate_ns2d,
    )
    _add_generate(
        gen_sub,
        "cylinder",
        help="flow past a cylinder on unstructured meshes (lattice Boltzmann), like MeshGraphNets' data",
        description=(
            "For every trajectory draw the cylinder's position and diameter and the Reynolds number, mesh "
            "the channel (graded triangles), solve the unsteady flow with the D2Q9 lattice-Boltzmann "
            "solver (validated against the Schaefer-Turek 2D-2 benchmark) and store the velocity and "
            "pressure at the mesh nodes every dt, with the meshes and node types, in one netCDF file with "
            "dims (sample, time, node). Beside it go the resolved config (NAME.yaml) and a preview "
            "(NAME.png). The file is written under a temporary name and renamed when complete."
        ),
        example="sim generate cylinder --config configs/data/cylinder_demo.yaml --out runs/cyl/cyl.nc",
        out_help="output file (default: the config's `output`)",
        func=_cmd_generate_cylinder,
    )

    dat = sub.add_parser(
        "data",
        help="weather data: inspect ERA5-style files, prepare a canonical training store",
        description=(
            "Read ERA5-style data in any of the conventions users hold (old and new CDS netCDF, the CDS ZIP, "
            "WeatherBench2 zarr, lat/lon netCDF) as one canonical form: dims (time, level, latitude, "
            "longitude), latitude ascending, longitude in [0, 360), level in hPa, WeatherBench2 names."
        ),
        formatter_class=_Formatter,
    )
    dat_sub = dat.add_subparsers(dest="action", metavar="ACTION", required=True)
    prep = dat_sub.add_parser(
        "prepare",
        help="turn raw downloads into one canonical zarr store with its normalization statistics",
        description=(
            "Open the config's sources (paths or globs; several files are merged), select variables and "
            "levels, check every field, and write OUT (a zarr store, one time step per chunk) with "
            "OUT/stats.nc (area-weighted mean, std and time-difference std per variable and level over "
            "the training period only) and OUT/prepare.yaml. Built under a temporary name and renamed."
        ),
        epilog=_EPILOG_OVERRIDES + " Example: sim data prepare configs/data/era5_example.yaml "
        "output=data/era5/train.zarr",
        formatter_class=_Formatter,
    )
    prep.add_argument("config", metavar="YAML", help="prepare config, e.g. configs/data/era5_example.yaml")
    prep.add_argument("--out", metavar="STORE.zarr", help="output store (default: the config's `output`)")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing store")
    _add_config_options(prep)
    prep.set_defaults(func=_cmd_data_prepare)
    dins = dat_sub.add_parser(
        "inspect",
        help="say what an ERA5-style source holds: convention, variables, levels, grid, time range",
        description=(
            "Describe a file, glob, zarr store or CDS ZIP: the convention found, its variables and levels, "
            "the grid, the time range and step, and missing values; a source that cannot be read is "
            "explained, not a traceback."
        ),
        formatter_class=_Formatter,
    )
    dins.add_argument("source", metavar="PATH", help="file, glob (quoted), zarr store or ZIP")
    dins.add_argument("--full", action="store_true", help="check every field for NaN (reads all data)")
    dins.set_defaults(func=_cmd_data_inspect)

    _add_generate(
        gen_sub,
        "swe",
        help="shallow water on the rotating sphere (spectral, torch-harmonics), written as ERA5-style data",
        description=(
            "Solve the shallow-water equations on the rotating sphere (spherical harmonics through "
            "torch-harmonics; equiangular or Gaussian grids; Galewsky, Williamson 2 or random initial "
            "conditions; hyperdiffusion; a rotation axis that may be tilted away from the grid's pole) and "
            "write each trajectory as an ERA5-style netCDF file: geopotential = g h at one nominal level, "
            "u and v winds, a time axis with real dates, latitude ascending. `sim data prepare` and "
            "WeatherWindows read it unchanged. Beside each file go the resolved config and a preview."
        ),
        example="sim generate swe --config configs/data/swe_demo.yaml --out runs/swe/swe.nc samples=2",
        out_help="output file; several samples add _000, _001, ... (default: config)",
        func=_cmd_generate_swe,
    )

    tr = sub.add_parser(
        "train",
        help="train a one-step surrogate on trajectory data (autoregressive losses, exact resume)",
        description=(
            "Train the model of an experiment config (sections model:, data:, train:) as a one-step "
            "surrogate: teacher forcing or an unrolled loss with a growing unroll, pushforward, training "
            "noise, residual prediction. Writes OUT/config.yaml, OUT/log.csv, OUT/checkpoints/last.pt and "
            "OUT/loss.png. Data parallel under torchrun (see README)."
        ),
        epilog=_EPILOG_OVERRIDES + " Example: sim train --config configs/ns2d/gcnn_p4m.yaml --out runs/p4m "
        "train.steps=2000",
        formatter_class=_Formatter,
    )
    tr.add_argument(
        "--config",
        metavar="YAML",
        help="experiment config, e.g. configs/ns2d/gcnn_p4m.yaml (not with --resume)",
    )
    tr.add_argument("--out", metavar="DIR", help="run folder (created; its parent must exist)")
    tr.add_argument("--resume", action="store_true", help="continue the run in DIR from its last checkpoint")
    tr.add_argument(
        "--estimate-memory",
        action="store_true",
        help="train nothing: print the peak memory of one training step at each unroll (counted on the meta "
        "device in seconds; what a GPU would allocate), then exit",
    )
    tr.add_argument("--overwrite", action="store_true", help="start afresh in an existing DIR")
    tr.add_argument("--stop-after", type=int, metavar="N", help="stop after N steps (with a checkpoint)")
    _add_config_options(tr)
    tr.set_defaults(func=_cmd_train)

    ro = sub.add_parser(
        "rollout",
        help="roll a trained surrogate out autoregressively, streaming states to netCDF",
        description=(
            "Roll a checkpoint's one-step model out for many steps from the first frames of each sample of a "
            "data file, writing states to netCDF in chunks (dims sample, lead_time, y, x) without holding "
            "the "
            "trajectory in memory. Divergence (NaN/Inf or blow-up) is recorded per sample in diverged_at; "
            "what was written before stays valid. --element applies a D4 element (0-7: r^k s^m = 4m + k) to "
            "the initial frames and the forcing, to evaluate on a rotated/reflected test set. The model "
            "steps as many data frames as it was trained to (data.stride of its config), and the data must "
            "have the grid, domain, time step and viscosity it was trained on (--ignore-data-mismatch to "
            "roll out anyway, e.g. an FNO at another resolution). Weather checkpoints (sphere models) roll "
            "out from initial times of a canonical store (--period, --init-times, --init-every, --max-inits) "
            "into WeatherBench2's layout (init_time x lead_time), past the end of the data if --steps asks "
            "(a simulated year of 6-hourly steps is 1460), saving every --save-every-th lead."
        ),
        epilog="Example: sim rollout --checkpoint runs/p4m/checkpoints/last.pt --data runs/demo/ns2d_demo.nc "
        "--steps 200 --samples 6:8 --out runs/p4m/rollout.nc",
        formatter_class=_Formatter,
    )
    ro.add_argument("--checkpoint", required=True, metavar="PT", help="checkpoint written by `sim train`")
    ro.add_argument(
        "--data", required=True, metavar="FILE.nc", help="trajectory file (initial frames, forcing, truth)"
    )
    ro.add_argument("--steps", required=True, type=int, metavar="N", help="model steps to roll out")
    ro.add_argument("--out", required=True, metavar="OUT.nc", help="rollout file to write")
    ro.add_argument("--samples", metavar="A:B", help="sample range [A, B) of the data file (default: all)")
    ro.add_argument("--start", type=int, default=0, help="first frame of the initial history")
    ro.add_argument("--element", type=int, help="grids: D4 element applied to the inputs (default: none)")
    ro.add_argument(
        "--rotate",
        type=float,
        default=0.0,
        metavar="DEG",
        help="meshes: roll out on the domain rotated by DEG degrees (results written in the data's frame)",
    )
    ro.add_argument("--mirror", action="store_true", help="meshes: mirror the domain (x -> -x) first")
    ro.add_argument(
        "--period", nargs=2, metavar=("START", "END"), help="weather: initial times within this period"
    )
    ro.add_argument("--init-times", nargs="+", metavar="TIME", help="weather: explicit initial times (ISO)")
    ro.add_argument(
        "--init-every", type=int, default=1, help="weather: every k-th initial time of the period"
    )
    ro.add_argument("--max-inits", type=int, help="weather: at most this many initial times")
    ro.add_argument("--save-every", type=int, default=1, help="weather: write every k-th lead")
    ro.add_argument("--batch-size", type=int, default=8, help="samples rolled out together")
    ro.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ro.add_argument("--overwrite", action="store_true", help="replace an existing OUT.nc")
    ro.add_argument(
        "--ignore-data-mismatch",
        action="store_true",
        help="roll out on data whose grid, time step or physics differ from the training data's",
    )
    ro.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ro.set_defaults(func=_cmd_rollout)

    ev = sub.add_parser(
        "evaluate",
        help="metrics, plots and a report for rollouts against the ground truth",
        description=(
            "Compare rollouts with the ground truth of their data file, per lead time: relative L2 error, "
            "RMSE, correlation, enstrophy, energy spectra, the time until the error crosses 0.1 and 0.5, "
            "divergence. Writes metrics (netCDF + CSV), PNG plots (error against lead time for all models, "
            "snapshots, spectra) and report.md into OUT, and prints the summary table. Weather rollouts: "
            "WeatherBench2's latitude-weighted RMSE, bias (and ACC with --climatology) per lead, variable, "
            "level and region against persistence, zonal energy spectra, kinetic energy over the whole "
            "rollout (stability) and the step where a model diverges, against --truth (default: the "
            "store the rollout started from)."
        ),
        epilog="Example: sim evaluate P4M=runs/p4m/rollout.nc P4M=runs/p4m/rollout_g5.nc "
        "CNN=runs/cnn/rollout.nc "
        "--out runs/eval (rollouts of a transformed test set share their model's name)",
        formatter_class=_Formatter,
    )
    ev.add_argument(
        "rollouts", nargs="+", metavar="[NAME=]ROLLOUT.nc", help="rollout files, optionally named"
    )
    ev.add_argument("--out", required=True, metavar="DIR", help="report folder (its parent must exist)")
    ev.add_argument("--title", default="Rollout evaluation", help="report title")
    ev.add_argument(
        "--truth", metavar="STORE", help="weather: the truth (default: the rollouts' data_file attribute)"
    )
    ev.add_argument("--climatology", metavar="FILE", help="weather: a climatology for ACC (WeatherBench2's)")
    ev.add_argument("--overwrite", action="store_true", help="replace existing report files")
    ev.set_defaults(func=_cmd_evaluate)

    ins = sub.add_parser(
        "inspect",
        help="summarise a data file written by `sim generate`",
        description="Print the dimensions, variables, value ranges and attributes of a data file.",
        formatter_class=_Formatter,
    )
    ins.add_argument("path", metavar="FILE.nc", help="netCDF file")
    ins.set_defaults(func=_cmd_inspect)
    return parser


def _add_generate(gen_sub, name: str, *, help: str, description: str, example: str, out_help: str, func):
    """One ``sim generate NAME`` subcommand: --config, --out, --overwrite and the config options."""
    p = gen_sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=f"{_EPILOG_OVERRIDES} Example: {example}",
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--config", required=True, metavar="YAML", help=f"data config, e.g. configs/data/{name}_demo.yaml"
    )
    p.add_argument("--out", metavar="FILE.nc", help=out_help)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_config_options(p)
    p.set_defaults(func=func)


def _generate_one_file(args: argparse.Namespace, config_cls, generate, preview, describe) -> int:
    """A data set in one netCDF file with its resolved config (NAME.yaml) and preview (NAME.png) beside it;
    every output is checked before any compute is spent."""
    from sim.config import dump_yaml, load_config, write_config
    from sim.io import check_output_path

    config = load_config(config_cls, args.config, args.overrides)
    if args.print_config:
        sys.stdout.write(dump_yaml(config))
        return 0
    out = Path(args.out if args.out else config.output)
    sidecars = (out.with_suffix(".yaml"), out.with_suffix(".png"))
    for path in (out, *sidecars):  # refuse before spending any compute
        check_output_path(path, overwrite=args.overwrite)
    generate(config, out, overwrite=args.overwrite, progress=not args.no_progress)
    write_config(config, sidecars[0], overwrite=args.overwrite)
    preview(out, sidecars[1], overwrite=args.overwrite)
    print(f"wrote {out} ({describe(config)}), {sidecars[0]}, {sidecars[1]}")
    return 0


def _cmd_generate_ns2d(args: argparse.Namespace) -> int:
    from sim.data.ns2d import NS2DDataConfig, generate_ns2d, preview_ns2d

    return _generate_one_file(
        args,
        NS2DDataConfig,
        generate_ns2d,
        preview_ns2d,
        lambda c: f"{c.samples} samples x {c.n_frames} frames at {c.resolution}^2",
    )


def _cmd_generate_cylinder(args: argparse.Namespace) -> int:
    from sim.data.cylinder import CylinderDataConfig, generate_cylinder, preview_cylinder

    return _generate_one_file(
        args,
        CylinderDataConfig,
        generate_cylinder,
        preview_cylinder,
        lambda c: f"{c.samples} trajectories x {c.frames} frames every {c.dt:g} s",
    )


def _cmd_generate_swe(args: argparse.Namespace) -> int:
    from sim.config import dump_yaml, load_config, write_config
    from sim.data.swe import SWEDataConfig, generate_swe, preview_swe, swe_output_paths
    from sim.io import check_output_path

    config = load_config(SWEDataConfig, args.config, args.overrides)
    if args.print_config:
        sys.stdout.write(dump_yaml(config))
        return 0
    files = swe_output_paths(config, args.out)
    sidecars = [(f.with_suffix(".yaml"), f.with_suffix(".png")) for f in files]
    for path in [*files, *(p for pair in sidecars for p in pair)]:  # refuse before spending any compute
        check_output_path(path, overwrite=args.overwrite)
    written = generate_swe(config, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    for path, (yaml_path, png) in zip(written, sidecars, strict=True):
        write_config(config, yaml_path, overwrite=args.overwrite)
        preview_swe(path, png, overwrite=args.overwrite)
    shown = ", ".join(str(p) for p in written[:3]) + (", ..." if len(written) > 3 else "")
    print(f"wrote {len(written)} trajectory file(s): {shown} (with .yaml configs and .png previews)")
    return 0


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from sim.config import dump_yaml, load_config
    from sim.data.weather import WeatherPrepareConfig, prepare_weather

    config = load_config(WeatherPrepareConfig, args.config, args.overrides)
    if args.print_config:
        sys.stdout.write(dump_yaml(config))
        return 0
    out = prepare_weather(config, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {out} (statistics {out / 'stats.nc'}, config {out / 'prepare.yaml'})")
    return 0


def _cmd_data_inspect(args: argparse.Namespace) -> int:
    from sim.data.era5 import describe_era5

    print(describe_era5(args.source, full=args.full))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from sim.config import ConfigError, dump_yaml, load_config
    from sim.train import ExperimentConfig, train

    if args.out is None and (args.resume or not (args.estimate_memory or args.print_config)):
        raise ConfigError(
            "--out: expected the run folder (only --estimate-memory and --print-config of a --config go "
            "without)"
        )
    out = Path(args.out or ".")
    if args.resume:  # the run's own resolved config, so a resumed run cannot drift from the first
        stored = out / "config.yaml"
        if not stored.is_file():
            raise ConfigError(f"{stored}: no such file (nothing to resume in {out})")
        config = load_config(ExperimentConfig, stored, args.overrides)
    elif args.config:
        config = load_config(ExperimentConfig, args.config, args.overrides)
    else:
        raise ConfigError("--config: expected an experiment config (or --resume to continue a run)")
    if args.print_config:
        sys.stdout.write(dump_yaml(config))
        return 0
    if args.estimate_memory:
        return _print_training_memory(config)
    result = train(
        config,
        out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    print(
        f"trained {result.step} steps: loss {result.loss:.4g}, 1-step validation loss "
        f"{result.val_loss_1:.4g}; checkpoint {result.checkpoint}, log {out / 'log.csv'}, "
        f"curve {out / 'loss.png'}"
    )
    return 0


def _print_training_memory(config) -> int:
    from sim.train.engine import training_memory

    t = config.train
    print(
        f"{config.model.name}: peak memory of one training step (batch {t.batch_size}, AdamW), counted on "
        "the meta device: what torch.cuda.max_memory_allocated would report"
    )
    for k in range(1, t.unroll + 1):
        r = training_memory(config, unroll=k)
        if k == 1:
            print(f"  parameters: {r['parameters']:,} ({r['parameter_bytes'] / 2**20:.1f} MiB)")
        print(f"  unroll {k}: {r['peak'] / 2**30:.3g} GiB")
    return 0


def _sample_range(text: str | None) -> range | None:
    from sim.config import ConfigError

    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--samples: expected A:B (a range of sample indices), got {text!r}") from None
    if not 0 <= a < b:
        raise ConfigError(f"--samples: expected 0 <= A < B, got {text!r}")
    return range(a, b)


def _cmd_rollout(args: argparse.Namespace) -> int:
    from sim.config import ConfigError
    from sim.data.ns2d import NS2DWindows
    from sim.evaluate import rollout_to_netcdf
    from sim.train import check_data_fits, load_stepper

    if args.steps < 1:
        raise ConfigError(f"--steps: expected a positive int, got {args.steps}")
    from sim.io import check_output_path

    check_output_path(args.out, overwrite=args.overwrite)
    stepper, config, ckpt = load_stepper(args.checkpoint)
    stride = config.data.stride
    attrs = {
        "checkpoint": str(args.checkpoint),
        "checkpoint_step": int(ckpt["step"]),
        "model": config.model.name,
        "model_group": config.model.group,
    }
    hint = " (pass --ignore-data-mismatch to roll out anyway)"
    if config.model.is_sphere:
        from sim.evaluate.weather_rollout import rollout_weather_to_netcdf

        if args.element is not None or args.rotate or args.mirror or args.samples or args.start:
            raise ConfigError(
                "--element/--rotate/--mirror/--samples/--start: a weather model takes --period, "
                "--init-times, --init-every and --max-inits"
            )
        attrs.pop("model_group")
        out = rollout_weather_to_netcdf(
            stepper,
            args.data,
            args.out,
            steps=args.steps,
            period=tuple(args.period) if args.period else None,
            init_times=args.init_times,
            init_every=args.init_every,
            max_inits=args.max_inits,
            save_every=args.save_every,
            batch_size=args.batch_size,
            device=args.device,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            attrs=attrs,
        )
        print(f"wrote {out}")
        return 0
    if config.model.is_mesh:
        from sim.data.cylinder import CylinderWindows
        from sim.evaluate.mesh_rollout import rollout_mesh_to_netcdf

        if args.element is not None:
            raise ConfigError(
                "--element: a mesh model is rolled out on a rotated domain with --rotate/--mirror"
            )
        if "data" in ckpt and not args.ignore_data_mismatch:
            check_data_fits(
                ckpt["data"], CylinderWindows(args.data, history=stepper.history, stride=stride), hint=hint
            )
        out = rollout_mesh_to_netcdf(
            stepper,
            args.data,
            args.out,
            steps=args.steps,
            samples=_sample_range(args.samples),
            start=args.start,
            stride=stride,
            rotation_deg=args.rotate,
            mirror=args.mirror,
            batch_size=args.batch_size,
            device=args.device,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            attrs=attrs,
        )
        print(f"wrote {out}")
        return 0
    if args.rotate or args.mirror:
        raise ConfigError("--rotate/--mirror: grid models take a D4 element (--element 0-7) instead")
    if "data" in ckpt and not args.ignore_data_mismatch:
        windows = NS2DWindows(args.data, history=stepper.history, stride=stride, state=config.data.state)
        check_data_fits(ckpt["data"], windows, hint=hint)
    out = rollout_to_netcdf(
        stepper,
        args.data,
        args.out,
        steps=args.steps,
        samples=_sample_range(args.samples),
        start=args.start,
        stride=stride,
        element=args.element,
        batch_size=args.batch_size,
        device=args.device,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        attrs=attrs,
    )
    print(f"wrote {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import xarray as xr

    from sim.data.ns2d import DataFileError
    from sim.evaluate import EvalResult, evaluate_rollout, format_summary, write_report
    from sim.evaluate.mesh_report import format_mesh_summary, write_mesh_report

    named = []
    for item in args.rollouts:
        name, _, path = item.rpartition("=")
        path = Path(path)
        if not path.is_file():
            raise DataFileError(f"{path}: no such rollout file")
        with xr.open_dataset(path) as ds:
            kind = ds.attrs.get("kind", "ns2d")
        named.append((name or path.stem, path, kind))
    kinds = {kind for _, _, kind in named}
    if len(kinds) > 1:
        raise DataFileError(f"rollouts of different kinds ({sorted(kinds)}) cannot share one report")
    if kinds == {"weather"}:  # WeatherBench2 scores, spectra, stability
        from sim.evaluate.weather_report import format_weather_summary, write_weather_report

        rows = write_weather_report(
            [(name, path) for name, path, _ in named],
            args.out,
            truth=args.truth,
            climatology=args.climatology,
            title=args.title,
            overwrite=args.overwrite,
        )
        print(format_weather_summary(rows))
        print(f"\nreport: {Path(args.out) / 'report.md'}")
        return 0
    if args.truth or args.climatology:
        raise DataFileError("--truth/--climatology: only weather rollouts take them")
    if kinds == {"cylinder"}:  # mesh rollouts: velocity RMSE per lead, Strouhal numbers, mesh plots
        rows = write_mesh_report(
            [(name, path) for name, path, _ in named], args.out, title=args.title, overwrite=args.overwrite
        )
        print(format_mesh_summary(rows))
        print(f"\nreport: {Path(args.out) / 'report.md'}")
        return 0
    results = [EvalResult(name, evaluate_rollout(path), rollout=path) for name, path, _ in named]
    rows = write_report(results, args.out, title=args.title, overwrite=args.overwrite)
    print(format_summary(rows))
    print(f"\nreport: {Path(args.out) / 'report.md'}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    import numpy as np
    import xarray as xr

    from sim.data.ns2d import DataFileError

    path = Path(args.path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError) as err:
        raise DataFileError(f"{path}: not a readable netCDF file ({err})") from None
    with ds:
        print(f"{path}  ({path.stat().st_size / 2**20:.1f} MiB)")
        print("dimensions: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
        for name, var in ds.data_vars.items():
            first = var.isel({d: 0 for d in var.dims if d == "sample"})  # one sample is enough for a glance
            values = np.asarray(first.values)
            rng = f"range [{np.nanmin(values):.4g}, {np.nanmax(values):.4g}]" if values.size else "empty"
            scope = " (sample 0)" if "sample" in var.dims else ""
            print(f"  {name}{var.dims} {var.dtype}: {rng}{scope}")
        for name in ds.coords:
            c = ds[name].values
            if c.size:
                print(f"  coordinate {name}: {c.size} values from {c.min():.6g} to {c.max():.6g}")
        print("attributes:")
        for key, value in ds.attrs.items():
            if key == "config":
                continue
            print(f"  {key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sim`` command line; returns the exit code."""
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)  # --help answers before torch is imported
    if extra:  # KEY=VALUE overrides after options (`sim data prepare C --out X k=v`) are still overrides
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")

    from sim.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # this process is ours: reuse freed memory (2.5x faster CPU solver steps)

    from sim.config import ConfigError
    from sim.data.ns2d import DataFileError
    from sim.discretize.latlon import GridError
    from sim.discretize.mesh import MeshError
    from sim.io import OutputError
    from sim.solvers.ns2d import SolverDivergedError
    from sim.train.checkpoint import CheckpointError

    try:
        return args.func(args)
    except (
        ConfigError,
        OutputError,
        DataFileError,
        SolverDivergedError,
        CheckpointError,
        GridError,
        MeshError,
        FloatingPointError,
    ) as err:
        message = " ".join(str(err).split())  # always one line
        print(f"sim: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sim: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
