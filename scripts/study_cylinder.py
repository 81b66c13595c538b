#!/usr/bin/env python
"""Study: mesh surrogates of flow past a cylinder, E(2)-equivariant MeshGraphNet vs MeshGraphNet vs EGNN.

MeshGraphNets' CylinderFlow recipe on the toolkit's own data (``sim generate cylinder``: lattice-Boltzmann
trajectories on per-trajectory meshes, cylinder position and size and Reynolds number varied): the three
models of configs/mesh/ at equal training budget (the same steps, batch, learning rate, noise, one-step
loss), each rolled out from the first frame of the test trajectories (the file's last ``--test``) for
``--rollout-steps`` steps on the original domain and on the domain rotated by ``--angle`` degrees and
mirrored (written back in the data's frame, so the two compare directly). Reported per model:

* velocity RMSE at 1 step, over 50 steps and over the whole rollout (MeshGraphNets' CylinderFlow figures
  2.34, 6.3 and 40.88 x 10^-3 are for their data and budget: orientation only);
* the same on the rotated and mirrored domain (identical for the equivariant models by construction);
* the Strouhal number each surrogate reproduces (transverse velocity at a probe 2 diameters behind the
  cylinder) against the solver's;
* persistence (the last frame kept) as the baseline row;
* the speed-up over the solver at equal horizon: the solver's wall time per frame (its time loop,
  recorded in the data file) over the surrogate's time per step (one step on a test mesh, the models
  timed alternately in this process: ``time_mesh_steps``). MeshGraphNets: 21 ms vs 820 ms a step (39x) on
  a GPU against COMSOL.

    python scripts/study_cylinder.py                         # generate, train, roll out, write the section
    python scripts/study_cylinder.py --data runs/cyl/cyl.nc --reuse    # reuse data, runs and rollouts
    python scripts/study_cylinder.py --quick --results -     # a smoke run on a synthetic file

Writes OUT/<model>/ (training run, rollouts), OUT/report/ (``write_mesh_report``) and the
``study_cylinder`` section of docs/results.md (``--results``, ``-`` prints only): one part per training
budget (steps), so a longer run is added beside a shorter one instead of replacing it. That part shows
the error curves, the gap between each model's two domains (``rollout_gap``) and the first model's probe
signal, copied to ``figures/`` beside the results file as ``study_cylinder_steps<N>_error_curves.png``,
``..._rollout_gap.png`` and ``..._probe.png``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.config import load_config, read_yaml  # noqa: E402
from sim.data.cylinder import CylinderDataConfig, generate_cylinder, write_synthetic_cylinder  # noqa: E402
from sim.evaluate import plot_mesh_error_curves, reusable_rollout, rollout_gap  # noqa: E402
from sim.evaluate.mesh_report import format_mesh_summary, report_stem, write_mesh_report  # noqa: E402
from sim.evaluate.mesh_rollout import persistence_stepper, rollout_mesh_to_netcdf, time_mesh_steps  # noqa: E402
from sim.io import (  # noqa: E402
    atomic_output,
    markdown_blocks,
    number_order,
    publish_section,
    read_markdown_blocks,
)
from sim.runtime import describe_machine, load_average, tune_cpu_allocator  # noqa: E402
from sim.train import ExperimentConfig, load_stepper  # noqa: E402
from sim.train.engine import train_or_reuse  # noqa: E402

MODELS = {  # key: (display name, experiment config)
    "equivariant_meshgraphnet": ("E(2)-equivariant MGN", ROOT / "configs/mesh/equivariant_meshgraphnet.yaml"),
    "meshgraphnet": ("MeshGraphNet", ROOT / "configs/mesh/meshgraphnet.yaml"),
    "egnn": ("EGNN", ROOT / "configs/mesh/egnn.yaml"),
    "tensor_product_mesh": ("SO(3) tensor product", ROOT / "configs/mesh/tensor_product_mesh.yaml"),
}
DEFAULT_MODELS = ["equivariant_meshgraphnet", "meshgraphnet", "egnn"]  # tensor_product_mesh on demand
DATA_CONFIG = ROOT / "configs/data/cylinder_demo.yaml"
SECTION = "study_cylinder"
QUICK_MODEL = ["model.latent=8", "model.blocks=1", "model.vectors=2"]

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--out", default="runs/study_cylinder", help="output folder")
parser.add_argument("--data", default=None, help="an existing data file (default: generate OUT/cylinder.nc)")
parser.add_argument("--test", type=int, default=2, help="test trajectories: the file's last (default 2)")
parser.add_argument("--val", type=int, default=1, help="validation trajectories before them (default 1)")
parser.add_argument("--steps", type=int, default=None, help="training steps (default: the configs')")
parser.add_argument("--rollout-steps", type=int, default=250, help="autoregressive steps (default 250)")
parser.add_argument("--angle", type=float, default=30.0, help="rotation of the test domain, degrees")
parser.add_argument("--models", nargs="+", choices=list(MODELS), default=DEFAULT_MODELS, help="which models")
parser.add_argument("--results", default=str(ROOT / "docs/results.md"), help="markdown file, or - to print")
parser.add_argument(
    "--reuse",
    action="store_true",
    help="keep finished training runs of the same config, and their rollouts made since alike",
)
parser.add_argument("--overwrite", action="store_true", help="replace existing runs, rollouts and reports")
parser.add_argument("--quick", action="store_true", help="a synthetic file, tiny models, a few steps")
parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _solver_seconds_per_frame(data_path: Path, samples: range) -> float:
    """The solver's wall time per stored frame, from t = 0 (warmup included) over the test samples."""

    with xr.open_dataset(data_path) as ds:
        if "solver_seconds" not in ds:
            return math.nan
        seconds = ds["solver_seconds"].values[list(samples)]
        frames_total = (ds.attrs["warmup"] + (ds.sizes["time"] - 1) * ds.attrs["dt"]) / ds.attrs["dt"]
    return float(seconds.mean() / frames_total) if math.isfinite(seconds.mean()) else math.nan


GAP_LEADS = (1, 10, 50)


def _gap_table(rollouts: list[tuple[str, Path]], figure: Path) -> list[str]:
    """Each model's original-domain rollout against its transformed-domain one (``rollout_gap``): a
    markdown table at a few leads, and their curves in ``figure``."""
    files: dict[str, list[Path]] = {}
    for name, path in rollouts:
        files.setdefault(name, []).append(path)
    gaps = [(name, rollout_gap(*paths[:2])) for name, paths in files.items() if len(paths) >= 2]
    if not gaps:
        return []
    plot_mesh_error_curves(gaps, figure, metric="gap", overwrite=True,
                           title="original against transformed-domain rollout (mapped back)")  # fmt: skip
    last = int(gaps[0][1].sizes["lead_time"])
    leads = [lead for lead in GAP_LEADS if lead < last] + [last]
    lines = [
        "Each model's rollouts on the two domains against each other (`sim.evaluate.rollout_gap`: the RMS "
        "velocity difference over the real nodes, the transformed rollout mapped back). At lead 1 the gap "
        "is the model's equivariance error in the precision it ran; an exactly equivariant model's rollouts "
        "are equal in exact arithmetic, so its later gaps are that rounding difference grown by the learned "
        "dynamics.",
        "",
        "| model | test sets | " + " | ".join(f"gap @{lead}" for lead in leads) + " |",
        "|---|---|" + "---:|" * len(leads),
    ]
    for name, gap in gaps:
        cells = " | ".join(f"{float(gap['gap_mean'].sel(lead_time=lead)):.2g}" for lead in leads)
        lines.append(f"| {name} | {gap.attrs['test_set']} / {gap.attrs['other_test_set']} | {cells} |")
    return lines


def _publish_figures(report: Path, model: str, results: Path, tag: str) -> list[str]:
    """Copy the report's error curves, rollout gaps and ``model``'s probe signal (original domain) to
    ``figures/`` beside ``results`` as ``study_cylinder_<tag>_*.png`` (replacing that budget's earlier
    ones); their markdown."""
    folder = results.parent / "figures"
    folder.mkdir(exist_ok=True)
    copies = [
        (report / "error_curves.png", "error_curves", "velocity RMSE against lead time, every rollout"),
        (report / "rollout_gap.png", "rollout_gap", "original against transformed-domain rollout"),
        (report / f"probe_{report_stem(model)}.png", "probe", f"{model}, original domain: v at the probe"),
    ]
    copies = [c for c in copies if c[0].is_file()]
    lines = []
    for source, kind, caption in copies:
        target = folder / f"{SECTION}_{tag}_{kind}.png"
        with atomic_output(target, overwrite=True) as tmp:
            shutil.copyfile(source, tmp)
        lines += [f"![{caption}]({target.relative_to(results.parent).as_posix()})", ""]
    return lines[:-1]


def main(argv: list[str] | None = None) -> list[dict]:
    args = parser.parse_args(argv)
    command = "python scripts/study_cylinder.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    tune_cpu_allocator()
    load_before = load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # the data: train on the first samples, validate and test on the last
    if args.data:
        data_path = Path(args.data)
    elif args.quick:
        data_path = out / "cylinder_synthetic.nc"
        if args.overwrite or not data_path.exists():
            write_synthetic_cylinder(data_path, samples=4, frames=8, overwrite=True)
    else:
        data_path = out / "cylinder.nc"
        if data_path.exists() and not args.overwrite:
            print(f"reusing {data_path} (pass --overwrite to regenerate)")
        else:
            config = load_config(CylinderDataConfig, DATA_CONFIG)
            generate_cylinder(config, data_path, overwrite=args.overwrite, progress=progress)

    with xr.open_dataset(data_path) as ds:
        n_samples, n_frames = ds.sizes["sample"], ds.sizes["time"]
    test = range(n_samples - args.test, n_samples)
    val = (test.start - args.val, test.start)
    if val[0] < 1:
        parser.error(f"--test {args.test} and --val {args.val} leave no training trajectories of {n_samples}")
    rollout_steps = min(args.rollout_steps, n_frames - 1)

    rows, timings, rollouts, budgets, steppers = [], {}, [], set(), {}
    for key in args.models:
        name, experiment = MODELS[key]
        mapping = read_yaml(experiment)
        mapping["data"] = {**mapping["data"], "path": str(data_path), "train_samples": [0, val[0]],
                           "val_samples": list(val)}  # fmt: skip
        overrides = list(QUICK_MODEL if args.quick else [])
        if args.quick:
            overrides = [
                o
                for o in overrides
                if "vectors" not in o or key in ("equivariant_meshgraphnet", "tensor_product_mesh")
            ]
            overrides += [
                "train.steps=3",
                "train.val_every=3",
                "train.checkpoint_every=3",
                "train.log_every=1",
            ]
        elif args.steps is not None:
            overrides += [f"train.steps={args.steps}", f"train.val_every={args.steps}",
                          f"train.checkpoint_every={min(args.steps, 100)}"]  # fmt: skip
        config = load_config(ExperimentConfig, mapping, overrides)
        budgets.add(config.train.steps)
        run = out / key
        print(f"== {name} -> {run}")
        checkpoint, seconds, reused = train_or_reuse(
            config, run, reuse=args.reuse, overwrite=args.overwrite, progress=progress
        )
        if reused:
            print(f"reusing {checkpoint}")
        stepper, _, _ = load_stepper(checkpoint)
        params = sum(p.numel() for p in stepper.model.parameters())
        steppers[name] = stepper
        for angle, mirror, tag in ((0.0, False, "original"), (args.angle, True, "rotated")):
            path = run / f"rollout_{tag}.nc"
            made = dict(
                data_file=str(data_path.resolve()), steps=rollout_steps, rotation_deg=float(angle),
                mirror=int(mirror), start=0, stride=1, model=name,
            )  # fmt: skip
            kept = reusable_rollout(path, args.reuse and checkpoint, made, {"sample": np.asarray(test)})
            if kept is None:
                rollout_mesh_to_netcdf(
                    stepper, data_path, path, steps=rollout_steps, samples=list(test), rotation_deg=angle,
                    mirror=mirror, batch_size=1, device=device, overwrite=True, progress=progress,
                    attrs={"model": name},
                )  # fmt: skip
            else:
                print(f"reusing {path}")
            rollouts.append((name, path))
        timings[name] = {"params": params, "train_seconds": seconds}
    # time per step: the models alternately in this process, so that their ratios hold on a loaded machine
    step_seconds = time_mesh_steps(steppers, data_path, sample=test.start, repeats=3 if args.quick else 7,
                                   min_seconds=0.0 if args.quick else 1.0, device=device)  # fmt: skip
    for name, t in step_seconds.items():
        timings[name]["step_seconds"] = t

    # the baseline: persistence, u(t + k) = u(t) (exactly equivariant, so the original domain only)
    (out / "persistence").mkdir(exist_ok=True)
    path = out / "persistence" / "rollout_original.nc"
    rollout_mesh_to_netcdf(
        persistence_stepper(), data_path, path, steps=rollout_steps, samples=list(test), batch_size=len(test),
        overwrite=True, progress=False, attrs={"model": "persistence"},
    )  # fmt: skip
    rollouts.append(("persistence", path))

    rows = write_mesh_report(
        rollouts, out / "report", title="study_cylinder", overwrite=True
    )  # from the rollouts just made or kept
    summary = format_mesh_summary(rows)
    print(summary)
    gap_lines = _gap_table(rollouts, out / "report" / "rollout_gap.png")
    print("\n".join(gap_lines))

    solver = _solver_seconds_per_frame(data_path, test)
    budget = "/".join(str(b) for b in sorted(budgets))
    lines = [
        f"### {budget} training steps: {' vs '.join(MODELS[k][0] for k in args.models)}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe_machine(device)}; 1-minute load average {load_before} at the start, "
        f"{load_average()} at the end  ",
        f"Data: `{data_path}`, {n_samples} trajectories x {n_frames} frames; training samples "
        f"0-{val[0] - 1}, "
        f"validation {val[0]}-{val[1] - 1}, test {test.start}-{test.stop - 1} (never trained on).  ",
        f"Rollouts: {rollout_steps} steps from the first frame, on the original domain and on the domain "
        f"mirrored and rotated by {args.angle:g} degrees; persistence (the last frame kept) is the baseline.",
        "",
        "| model | parameters | train time | time per step | speed-up over the solver |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, t in timings.items():
        speedup = solver / t["step_seconds"] if math.isfinite(solver) else math.nan
        train_time = "–" if not math.isfinite(t["train_seconds"]) else f"{t['train_seconds']:.0f} s"
        lines.append(
            f"| {name} | {t['params']:,} | {train_time} | {1e3 * t['step_seconds']:.1f} ms | "
            + ("–" if not math.isfinite(speedup) else f"{speedup:.2g}x")
            + " |"
        )
    lines += [
        "",
        f"Time per step: one autoregressive step on the mesh of test sample {test.start}, the models timed "
        "alternately in this process (medians), on "
        + ("the GPU. " if device == "cuda" else "the CPU. ")
        + (
            f"The solver: {1e3 * solver:.0f} ms of lattice-Boltzmann time per stored frame (dt = 0.01), "
            "warmup included, recorded when the data were generated (on this machine's CPU)."
            if math.isfinite(solver)
            else "The solver's time was not recorded."
        ),
        "",
        summary,
        "",
        *gap_lines,
        "",
        f"Report with error curves, snapshots and probe signals: `{out / 'report' / 'report.md'}`",
    ]
    if args.results != "-":  # the report's main figures beside the results file, for its readers
        lines += ["", *_publish_figures(out / "report", rollouts[0][0], Path(args.results), f"steps{budget}")]
    if args.quick:
        lines += [
            "",
            "This was a `--quick` smoke run (a synthetic file, tiny models): the numbers mean nothing.",
        ]
    blocks = {} if args.results == "-" else read_markdown_blocks(args.results, SECTION)
    blocks[f"steps{budget}"] = "\n".join(lines)
    header = [
        "## Flow past a cylinder: equivariant and plain mesh GNNs (`scripts/study_cylinder.py`)",
        "",
        "One part per training budget, each written by the run that trained it (a run keeps the parts of "
        "the budgets it did not train).",
        "",
        markdown_blocks(SECTION, blocks, order=number_order),
    ]
    publish_section(args.results, SECTION, "\n".join(header), title="Results")
    return rows


if __name__ == "__main__":
    main()
