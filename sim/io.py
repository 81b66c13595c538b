"""Safe file output: nothing half-written, nothing overwritten without being asked."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OutputError", "atomic_output", "check_output_path", "publish_section", "write_markdown_section"]


class OutputError(ValueError):
    """An output path that cannot be written as asked (missing folder, existing file)."""


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check that ``path`` can be written: its folder exists and it does not exist unless ``overwrite``.

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: one line naming the path and what is wrong.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file path")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: output folder {path.parent} does not exist (create it first)")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (pass --overwrite, or overwrite=True, to replace it)")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a file through a temporary name in the same folder, renamed into place only on success.

    Usage::

        with atomic_output("out/data.nc", overwrite=False) as tmp:
            write_everything(tmp)
        # out/data.nc now exists, complete; on any exception (or Ctrl-C) nothing is left behind.

    Args:
        path: the final file.
        overwrite: replace an existing file; otherwise an existing file is an error.

    Yields:
        The temporary path to write to (``.NAME.partial-PID`` beside the final file).

    Raises:
        OutputError: the folder is missing, or the file exists and ``overwrite`` is False.
    """
    path = check_output_path(path, overwrite=overwrite)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"{path}: nothing was written")
        if path.exists() and not overwrite:  # appeared while we were writing
            raise OutputError(f"{path}: already exists (pass --overwrite, or overwrite=True, to replace it)")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_markdown_section(
    path: str | os.PathLike, name: str, section: str, *, title: str = "Benchmarks"
) -> Path:
    """Replace the block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in a markdown file
    (append it if absent; create the file if missing), atomically. Other sections stay as they are.

    This is how each ``scripts/bench_*.py`` owns its section of docs/benchmarks.md (and each study its
    section of docs/results.md). ``title`` heads a file created here; an existing file keeps its own.
    """
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = (
        path.read_text()
        if path.exists()
        else f"# {title}\n\nEach section is written by the script it names.\n"
    )
    block = f"{start}\n{section.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text)
    return path


def read_markdown_blocks(path: str | os.PathLike, name: str) -> dict[str, str]:
    """The sub-blocks ``<!-- NAME:KEY:start -->`` ... ``<!-- NAME:KEY:end -->`` inside section ``name`` of
    a markdown file, as ``{KEY: text}`` (empty when the file or the section is missing).

    A script whose section has parts written by different runs (one table per device, per training-set
    size) reads the parts it does not remake here and writes them back with :func:`markdown_blocks`."""
    path = Path(path)
    if not path.is_file():
        return {}
    text = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        return {}
    section = text.split(start, 1)[1].split(end, 1)[0]
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:([\w.-]+):start -->\n(.*?)\n<!-- {re.escape(name)}:\1:end -->", re.DOTALL
    )
    return {m.group(1): m.group(2) for m in pattern.finditer(section)}


def markdown_blocks(name: str, blocks: dict[str, str], *, order=None) -> str:
    """``blocks``, each between its ``<!-- NAME:KEY:start/end -->`` markers (see
    :func:`read_markdown_blocks`), in the given order or sorted by ``order(KEY)`` (e.g.
    :func:`number_order`)."""
    keys = list(blocks) if order is None else sorted(blocks, key=order)
    return "\n\n".join(
        f"<!-- {name}:{key}:start -->\n{blocks[key].rstrip()}\n<!-- {name}:{key}:end -->" for key in keys
    )


def number_order(key: str) -> tuple[int, str]:
    """A sort key for blocks named by a size: the first number in the key (``n4`` before ``n12``,
    ``steps600`` before ``steps2000``), keys without one last."""
    m = re.search(r"\d+", key)
    return (int(m.group()) if m else 1 << 30, key)


def publish_section(
    out: str | os.PathLike, name: str, section: str, *, title: str = "Benchmarks"
) -> Path | None:
    """Print a script's section and, unless ``out`` is ``"-"`` (print only), write it as section ``name``
    of the markdown file ``out`` (:func:`write_markdown_section`).

    Returns:
        The file written, or None for ``"-"``.
    """
    print("\n" + section.rstrip())
    if str(out) == "-":
        return None
    path = write_markdown_section(out, name, section, title=title)
    print(f"\nwrote section {name} of {path}")
    return path
