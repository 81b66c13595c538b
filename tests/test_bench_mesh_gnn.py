"""Smoke test of scripts/bench_mesh_gnn.py with --quick (no timing assertions), and the two things its
numbers rest on: the benchmark graph is a triangulated mesh, and the plain MessagePassing reference
computes what MeshGraphNetBlock computes for the nodes."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_mesh_gnn")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script inside torch_geometric
def test_quick_run_writes_its_section(bench, tmp_path):
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    threads = torch.get_num_threads()
    assert bench.main(["--quick", "--threads", "1", "--no-tune-allocator", "--out", str(md)]) == 0
    assert torch.get_num_threads() == threads  # restored
    text = md.read_text()
    assert "keep" in text and text.count(f"<!-- {bench.SECTION}:start -->") == 1
    assert "--quick" in text and "Throughput goal" in text and "same feature size (plain, 192 wide)" in text
    rows = [line for line in text.splitlines() if line.startswith("| 1,802 | 324 |")]
    assert [row.split("|")[3].strip() for row in rows] == list(bench.LAYERS)
    for row in rows:
        bytes_per_edge = float(row.split("|")[8].replace(",", ""))
        assert 1000 < bytes_per_edge < 20_000  # activations of width 128 in float32, a few per edge


def test_grid_graph_is_a_triangulated_mesh(bench):
    pos, edge_index = bench.grid_graph(10_000)
    k = round(len(pos) ** 0.5)
    assert k * k == len(pos) and edge_index.shape[1] == 2 * (3 * k * k - 4 * k + 1)
    keys = edge_index[0] * len(pos) + edge_index[1]
    assert torch.equal(keys, keys.sort().values) and len(keys.unique()) == len(keys)  # sorted, no repeats
    reverse = edge_index[1] * len(pos) + edge_index[0]
    assert torch.equal(reverse.sort().values, keys)  # both directions
    degree = torch.bincount(edge_index[1], minlength=len(pos)).reshape(k, k)
    assert (degree[1:-1, 1:-1] == 6).all()
    length = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
    assert torch.allclose(length.unique(), torch.tensor([1.0, 2**0.5]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_plain_reference_computes_the_meshgraphnet_node_update(bench):
    from sim.nn.mesh_gnn import MeshGraphNetBlock

    torch.manual_seed(0)
    latent = 8
    plain, block = bench.plain_layer(latent).double(), MeshGraphNetBlock(latent).double()
    with torch.no_grad():  # the same MLPs; plain concatenates [h_i, h_j, e], the block [h_j, h_i, e]
        w = plain.message_mlp[0].weight
        block.edge_mlp.first.weight.copy_(
            torch.cat([w[:, latent : 2 * latent], w[:, :latent], w[:, 2 * latent :]], 1)
        )
        block.edge_mlp.first.bias.copy_(plain.message_mlp[0].bias)
        for a, b in (
            (block.edge_mlp.rest, plain.message_mlp[1:]),
            (block.node_mlp.rest, plain.update_mlp[1:]),
        ):
            for p, q in zip(a.parameters(), b.parameters(), strict=True):
                p.copy_(q)
        block.node_mlp.first.load_state_dict(plain.update_mlp[0].state_dict())
    _, edge_index = bench.grid_graph(300)
    n = int(edge_index.max()) + 1
    h, e = (
        torch.randn(n, latent, dtype=torch.float64),
        torch.randn(edge_index.shape[1], latent, dtype=torch.float64),
    )
    torch.testing.assert_close(block(h, e, edge_index)[0], plain(h, edge_index, e), atol=1e-12, rtol=0)
