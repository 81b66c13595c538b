#!/usr/bin/env python
"""Benchmark: mesh message-passing layers against a plain torch_geometric ``MessagePassing`` layer.

Processor layers at latent width 128 on triangulated grids (a mesh's connectivity: interior degree 6,
both directions of every edge, nodes row by row, edges sorted by sender) of about 10k, 100k and 1M
directed edges, float32, forward + backward (gradients of the parameters and the inputs):

* ``plain``: a torch_geometric ``MessagePassing`` layer of the same width, the reference:
  ``h_i' = h_i + MLP_n([h_i, sum_j MLP_e([h_i, h_j, e_ij])])``, MLPs as MeshGraphNets' (two hidden layers
  of 128, ReLU, LayerNorm), the concatenation built per edge as in ``message()``.
* ``MeshGraphNetBlock(128)``: the same MLPs, plus the edge state ``e_ij' = e_ij + MLP_e(...)``.
* ``EquivariantMeshBlock(128, vectors=32)``: 128 scalars and 32 vectors (d = 2) on nodes and edges, the
  models' default; and with 16 vectors.
* ``EGNNLayer(128, vectors=1, vector_invariants=True, normalize=True, update_pos=False)``: the layer of
  ``sim.models.meshgraphnet.EGNN``.

All five are timed alternately in the same process (:func:`sim.runtime.time_interleaved`, medians of
the clean rounds). Goal: throughput (edges per second) at least 1x the plain layer's, and memory linear
in the number of edges: the bytes saved for the backward pass (counted with
``torch.autograd.graph.saved_tensors_hooks``, distinct storages, parameters excluded) per edge should
not grow with the size.

    python scripts/bench_mesh_gnn.py              # CPU; writes its section of docs/benchmarks.md
    python scripts/bench_mesh_gnn.py --out -      # print only
    python scripts/bench_mesh_gnn.py --quick      # tiny sizes (the smoke test)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.io import publish_section  # noqa: E402
from sim.models.cnn import count_parameters  # noqa: E402
from sim.nn.mesh_gnn import EGNNLayer, EquivariantMeshBlock, MeshGraphNetBlock  # noqa: E402
from sim.runtime import describe_machine, load_average, time_interleaved, tune_cpu_allocator  # noqa: E402

SECTION = "bench_mesh_gnn"
LATENT = 128
VECTORS = 32
DIM = 2
SIZES = (10_000, 100_000, 1_000_000)
EQ16 = "EquivariantMeshBlock, 16 vectors"
WIDE = LATENT + VECTORS * DIM  # floats per node and edge of EquivariantMeshBlock(LATENT, VECTORS)
PLAIN_WIDE = f"plain, {WIDE} wide"
LAYERS = ("plain", PLAIN_WIDE, "MeshGraphNetBlock", "EquivariantMeshBlock", EQ16, "EGNNLayer")
REFERENCES = ("plain", PLAIN_WIDE)


def grid_graph(edges: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A triangulated ``k x k`` grid with about ``edges`` directed edges (``6 k^2`` asymptotically).

    Returns:
        ``pos [k^2, 2]`` (unit spacing) and ``edge_index [2, E]`` int64: both directions of the right,
        up and diagonal neighbours, sorted by sender then receiver.
    """
    k = max(2, round(math.sqrt(edges / 6)))
    idx = torch.arange(k * k).reshape(k, k)  # [k, k] row-major node numbers
    pairs = [
        (idx[:, :-1], idx[:, 1:]),  # right
        (idx[:-1, :], idx[1:, :]),  # up
        (idx[:-1, :-1], idx[1:, 1:]),  # diagonal
    ]
    a = torch.cat([p[0].reshape(-1) for p in pairs])
    b = torch.cat([p[1].reshape(-1) for p in pairs])
    sender, receiver = torch.cat([a, b]), torch.cat([b, a])  # [E]
    order = torch.argsort(sender * (k * k) + receiver)
    edge_index = torch.stack([sender[order], receiver[order]])  # [2, E]
    y, x = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    pos = torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1).float()  # [N, 2]
    return pos, edge_index


def _mlp(fan_in: int, latent: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(fan_in, latent),
        nn.ReLU(),
        nn.Linear(latent, latent),
        nn.ReLU(),
        nn.Linear(latent, latent),
        nn.LayerNorm(latent),
    )


def plain_layer(latent: int) -> nn.Module:
    """The reference: a torch_geometric ``MessagePassing`` layer, MLP messages of ``[h_i, h_j, e_ij]``, sum
    aggregation, MLP node update with a residual (``forward(h, edge_index, e) -> h'``)."""
    from torch_geometric.nn import MessagePassing  # here: importing torch_geometric takes seconds

    class PlainMessagePassing(MessagePassing):
        def __init__(self) -> None:
            super().__init__(aggr="sum")
            self.message_mlp = _mlp(3 * latent, latent)
            self.update_mlp = _mlp(2 * latent, latent)

        def forward(self, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            agg = self.propagate(edge_index, h=h, e=e)  # [N, latent]
            return h + self.update_mlp(torch.cat([h, agg], dim=-1))

        def message(self, h_i: torch.Tensor, h_j: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            return self.message_mlp(torch.cat([h_i, h_j, e], dim=-1))  # [E, latent]

    return PlainMessagePassing()


def _setups(edges: int, *, seed: int = 0) -> tuple[dict, int, int]:
    """Per layer ``(module, forward: () -> tuple of outputs)``, inputs requiring gradients."""
    torch.manual_seed(seed)
    pos, edge_index = grid_graph(edges)
    n, E = pos.shape[0], edge_index.shape[1]

    def leaf(*shape, scale: float = 1.0):
        return (torch.randn(*shape) * scale).requires_grad_(True)

    h, e = leaf(n, LATENT), leaf(E, LATENT)
    h_wide, e_wide = leaf(n, WIDE), leaf(E, WIDE)
    V, W = leaf(n, VECTORS, DIM, scale=DIM**-0.5), leaf(E, VECTORS, DIM, scale=DIM**-0.5)  # unit |V_c|
    V16, W16 = leaf(n, 16, DIM, scale=DIM**-0.5), leaf(E, 16, DIM, scale=DIM**-0.5)
    velocity = leaf(n, 1, DIM)
    plain = plain_layer(LATENT)
    plain_wide = plain_layer(WIDE)
    mgn = MeshGraphNetBlock(LATENT)
    equivariant = EquivariantMeshBlock(LATENT, VECTORS)
    equivariant16 = EquivariantMeshBlock(LATENT, 16)
    egnn = EGNNLayer(LATENT, vectors=1, vector_invariants=True, normalize=True, update_pos=False)
    setups = {
        "plain": (plain, lambda: (plain(h, edge_index, e),)),
        PLAIN_WIDE: (plain_wide, lambda: (plain_wide(h_wide, edge_index, e_wide),)),
        "MeshGraphNetBlock": (mgn, lambda: mgn(h, e, edge_index)),
        "EquivariantMeshBlock": (equivariant, lambda: equivariant(h, V, e, W, edge_index)),
        EQ16: (equivariant16, lambda: equivariant16(h, V16, e, W16, edge_index)),
        "EGNNLayer": (egnn, lambda: egnn(h, pos, edge_index, vectors=velocity)[::2]),
    }
    return setups, n, E


def _step(forward):
    """Forward + backward with a fixed output gradient (ones): one training step's layer work."""

    def fn():
        outputs = forward()
        torch.autograd.backward(outputs, [torch.ones_like(o) for o in outputs])

    return fn


def saved_bytes(module: nn.Module, forward) -> int:
    """Bytes of the distinct storages the forward pass saves for backward, parameters excluded.

    The hooks keep the storages (alive until the end of the forward pass, as the graph would keep them, so
    that no address is reused and counted twice), not the tensors: returning the saved tensors themselves
    would tie outputs saved by their own ``grad_fn`` into reference cycles that outlive the forward pass
    (and fill the memory at 1M edges). The measured graph is never differentiated."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    kept: dict[int, torch.UntypedStorage] = {}

    def pack(t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage

    def unpack(_) -> torch.Tensor:
        raise RuntimeError("saved_bytes: the measured graph has no saved tensors to differentiate")

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        forward()
    total = sum(storage.nbytes() for storage in kept.values())
    kept.clear()
    return total


def bench_size(edges: int, *, repeats: int, min_seconds: float, max_extra_rounds: int | None) -> dict:
    setups, n, E = _setups(edges)
    memory = {name: saved_bytes(module, fwd) for name, (module, fwd) in setups.items()}
    params = {name: count_parameters(module) for name, (module, _) in setups.items()}
    times = time_interleaved(
        {name: _step(fwd) for name, (_, fwd) in setups.items()},
        repeats=repeats,
        min_seconds=min_seconds,
        max_extra_rounds=max_extra_rounds,
    )
    return {"edges": E, "nodes": n, "times": times, "memory": memory, "params": params}


def report(rows: list[dict], *, command: str, seconds: float, load: tuple, tuned: bool) -> str:
    lines = [
        "## Mesh message passing: MeshGraphNets, equivariant and EGNN layers vs a plain MessagePassing layer",
        "",
        f"`{command}` on {describe_machine()}; {seconds:.0f} s in all (1-minute load average {load[0]} "
        f"before, {load[1]} after); glibc allocator {'tuned' if tuned else 'default'} "
        "(`sim.runtime.tune_cpu_allocator`).",
        f"Processor layers at latent width {LATENT}, float32, forward + backward (gradients of parameters "
        f"and inputs), on triangulated {DIM}D grids (interior degree 6, edges sorted by sender), all timed "
        "alternately in one process (`sim.runtime.time_interleaved`), medians of the clean rounds (of all "
        "rounds when fewer than 3 were clean). `plain`: a torch_geometric `MessagePassing` layer, message "
        "MLP of `[h_i, h_j, e_ij]`, sum aggregation, node MLP, MeshGraphNets' MLPs (2 hidden layers, ReLU, "
        f"LayerNorm). `EquivariantMeshBlock` carries {LATENT} scalars and {VECTORS} vectors (the models' "
        f"default; {WIDE} floats per node and edge) or 16 on nodes and edges; `{PLAIN_WIDE}`: the plain "
        f"layer at that width ({WIDE} floats per node and edge, all scalars), the reference of equal "
        "feature size. `EGNNLayer` is the layer of `sim.models.meshgraphnet.EGNN` "
        "(one velocity channel, no edge state). Goal: throughput at least 1x plain's; bytes saved for "
        "backward per edge constant across sizes (memory linear in edges).",
        "",
        "| edges | nodes | layer | parameters | ms / step | M edges / s | vs plain | saved for backward "
        "(bytes / edge) | clean rounds |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        base = row["times"]["plain"]["median"]
        for name in LAYERS:
            t = row["times"][name]
            lines.append(
                f"| {row['edges']:,} | {row['nodes']:,} | {name} | {row['params'][name]:,} | "
                f"{t['median'] * 1e3:.1f} | {row['edges'] / t['median'] / 1e6:.2f} | "
                f"{base / t['median']:.2f}x | {row['memory'][name] / row['edges']:,.0f} | "
                f"{t['clean']}/{t['rounds']} |"
            )

    def ratio(row: dict, name: str, reference: str) -> float:  # speed of name relative to reference
        return row["times"][reference]["median"] / row["times"][name]["median"]

    layers = [name for name in LAYERS if name not in REFERENCES]
    worst = {name: min(ratio(row, name, "plain") for row in rows) for name in layers}
    wide = " / ".join(f"{ratio(row, 'EquivariantMeshBlock', PLAIN_WIDE):.2f}" for row in rows)
    met = ", ".join(f"{name} ({r:.2f}x)" for name, r in worst.items() if r >= 1.0) or "none"
    missed = ", ".join(f"{name} ({r:.2f}x)" for name, r in worst.items() if r < 1.0) or "none"
    per_edge = {name: [row["memory"][name] / row["edges"] for row in rows] for name in LAYERS}
    spread = max(max(b) / min(b) for b in per_edge.values())
    lines += [
        "",
        f"Throughput goal, >= 1x plain at every size (worst ratio in brackets): met by {met}; missed by "
        f"{missed}. Against the plain layer of the same feature size ({PLAIN_WIDE}), EquivariantMeshBlock "
        f"runs at {wide}x its speed at {' / '.join(format(row['edges'], ',') for row in rows)} edges. "
        "Bytes saved for "
        f"backward per edge vary across the sizes by at most {spread:.2f}x (1.00x: memory exactly linear in "
        "edges).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="target numbers of directed edges"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: 2000 edges, 1 round")
    parser.add_argument("--no-tune-allocator", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file, or - to print"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.min_seconds = [2000], 1, 0.0
    command = "python scripts/bench_mesh_gnn.py" + ("" if argv is None else " " + " ".join(argv))
    if argv is None and len(sys.argv) > 1:
        command += " " + " ".join(sys.argv[1:])
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, command)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, command: str) -> int:
    tuned = False if args.no_tune_allocator else tune_cpu_allocator()
    load0, t0 = load_average(), time.perf_counter()
    rows = []
    for edges in args.sizes:
        repeats = args.repeats if edges < 500_000 else min(args.repeats, 3)
        rows.append(
            bench_size(
                edges,
                repeats=repeats,
                min_seconds=args.min_seconds,
                # contended rounds are re-run, but at most once at 1M edges (a round takes minutes there)
                max_extra_rounds=0 if args.quick else (None if edges < 500_000 else 1),
            )
        )
        row = rows[-1]
        print(f"{row['edges']:,} edges done ({time.perf_counter() - t0:.0f} s):", flush=True)
        for name in LAYERS:  # progress, and a record should a larger size not finish
            t = row["times"][name]["median"]
            print(
                f"  {name:34s} {t * 1e3:9.1f} ms  {row['times']['plain']['median'] / t:5.2f}x plain  "
                f"{row['memory'][name] / row['edges']:7,.0f} B/edge saved",
                flush=True,
            )
    text = report(
        rows,
        command=command,
        seconds=time.perf_counter() - t0,
        load=(load0, load_average()),
        tuned=tuned,
    )
    publish_section(args.out, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
