"""Safe outputs: atomic writes, refusal to overwrite, markdown sections owned by their writers."""

from __future__ import annotations

import pytest

from sim.io import OutputError, atomic_output, write_markdown_section


def test_atomic_output_leaves_nothing_on_failure_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    with pytest.raises(OutputError, match="already exists"):
        with atomic_output(target) as tmp:
            tmp.write_text("again")
    with pytest.raises(OutputError, match="output folder .* does not exist"):
        with atomic_output(tmp_path / "no" / "b.txt"):
            pass


def test_markdown_sections_are_replaced_in_place(tmp_path):
    md = tmp_path / "b.md"
    write_markdown_section(md, "one", "first")
    write_markdown_section(md, "two", "second")
    write_markdown_section(md, "one", "first, again")
    text = md.read_text()
    assert text.startswith("# Benchmarks") and text.count("<!-- one:start -->") == 1
    assert text.index("first, again") < text.index("second") and "first\n" not in text


def test_a_new_markdown_file_gets_the_title_an_existing_one_keeps_its_own(tmp_path):
    md = tmp_path / "r.md"
    write_markdown_section(md, "study", "numbers", title="Results")
    write_markdown_section(md, "other", "more", title="Something else")
    text = md.read_text()
    assert text.startswith("# Results\n") and "Something else" not in text


def test_publish_section_prints_and_writes_unless_asked_to_print_only(tmp_path, capsys):
    from sim.io import publish_section

    assert publish_section("-", "bench_x", "## X\n\nnumbers") is None
    assert "numbers" in capsys.readouterr().out and not list(tmp_path.iterdir())
    md = tmp_path / "b.md"
    assert publish_section(md, "bench_x", "## X\n\nnumbers") == md
    assert "wrote section bench_x of" in capsys.readouterr().out
    assert "<!-- bench_x:start -->\n## X\n\nnumbers\n<!-- bench_x:end -->" in md.read_text()


def test_markdown_blocks_round_trip_inside_their_section(tmp_path):
    from sim.io import markdown_blocks, read_markdown_blocks

    md = tmp_path / "r.md"
    assert read_markdown_blocks(md, "s") == {}  # no file
    body = "head\n\n" + markdown_blocks("s", {"n4": "four\nlines", "cpu": "x"}) + "\n\nfoot"
    write_markdown_section(md, "s", body)
    write_markdown_section(md, "other", markdown_blocks("other", {"n4": "not mine"}))
    assert read_markdown_blocks(md, "s") == {"n4": "four\nlines", "cpu": "x"}
    assert read_markdown_blocks(md, "other") == {"n4": "not mine"}
    assert read_markdown_blocks(md, "missing") == {}


def test_markdown_blocks_sorted_by_their_number():
    from sim.io import markdown_blocks, number_order

    text = markdown_blocks("s", {"n12": "b", "cpu": "c", "n4": "a"}, order=number_order)
    assert [line for line in text.splitlines() if "start" in line] == [
        "<!-- s:n4:start -->",
        "<!-- s:n12:start -->",
        "<!-- s:cpu:start -->",
    ]
