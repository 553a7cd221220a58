"""The examples of README.md and docs/ run as written, so the docs cannot drift from the code.

- Every Python block runs, in a folder holding small stores under the names the docs use, with
  the few names a block leaves to its reader (``epochs``, ``model``) defined; a block's
  ``for ... in loader`` loop must run at least once (a loader that yields nothing is a broken
  example).
- Every ``sdfkit`` command line of a bash block is parsed by the command line itself: the
  command, its options, their values and choices, the required arguments; and those that read a
  store the docs folder has (``info``, ``show``, ``validate``, ``export``, ``voxelize``) run for
  real. Running the rest would download MNIST, mesh ShapeNet and train for hours; the quick
  start's commands run for real in ``scripts/setup.sh``'s demo, which CI runs first.
- Every ``python benchmarks/...`` line names a script that is there, with options it takes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import ROOT
from test_cli import sdfkit

from sdfkit.geometry.shapes import make_shapes

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(language: str) -> list[tuple[str, int, str]]:
    """(file, first line, text) of every fenced block of ``language``."""
    out = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        start = None
        for k, line in enumerate(lines):
            if start is None and line.strip() == f"```{language}":
                start = k + 1
            elif start is not None and line.strip() == "```":
                out.append((path.name, start + 1, "\n".join(lines[start:k])))
                start = None
    return out


def _command_lines(text: str) -> list[list[str]]:
    """The shell words of each command of a bash block (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # OMP_NUM_THREADS=1 ...
            words = words[1:]
        if words and words[0] == "taskset":
            words = words[3:]
        if words:
            commands.append(words)
    return commands


BASH = [(f"{name}:{line}", words) for name, line, text in _blocks("bash") for words in _command_lines(text)]


@pytest.mark.parametrize("where,words", [b for b in BASH if b[1][0] == "sdfkit"], ids=lambda v: str(v)[:60])
def test_every_sdfkit_line_of_the_docs_parses(where, words):
    from cli.main import main

    name, args = words[1], [w for w in words[2:] if not (w.startswith("[") or w.endswith("]"))]
    assert name in main.commands, f"{where}: no command {name!r}"
    command = main.commands[name]
    try:
        command.make_context(name, list(args))
    except click.ClickException as exc:
        pytest.fail(f"{where}: sdfkit {' '.join(words[1:])}: {exc.format_message()}")


@pytest.mark.parametrize(
    "where,words", [b for b in BASH if b[1][0] in ("python", "torchrun")], ids=lambda v: str(v)[:60]
)
def test_every_benchmark_line_of_the_docs_names_a_script_and_its_options(where, words):
    if words[0] == "torchrun":
        assert "cli.main" in words, where
        return
    script = ROOT / words[1]
    assert script.is_file(), f"{where}: no {words[1]}"
    text = script.read_text()
    for option in (w for w in words[2:] if w.startswith("--")):
        assert f'"{option}"' in text, f"{where}: {words[1]} has no option {option}"


@pytest.fixture(scope="module")
def docs_folder(tmp_path_factory) -> Path:
    """Small stores under the names the docs use: mnist.zarr; chairs.zarr (with OccNet's,
    IF-Net's and NDF's samples and the per-sample confidence), and shapes.zarr and all.zarr as
    links to it."""
    folder = tmp_path_factory.mktemp("docs")
    sdfkit("prepare-mnist", "-o", folder / "mnist.zarr", "--limit", "40", "--val-size", "8")
    make_shapes(folder / "tree", 4, defects=("clean",))
    small = ["--samples", "40000", "--surface-samples", "4000", "--workers", "1"]
    small += ["--recipe", "occnet", "--recipe", "ifnet", "--recipe", "ndf", "--confidence"]
    sdfkit("prepare-shapenet", folder / "tree", "-o", folder / "chairs.zarr", *small)
    for name in ("shapes.zarr", "all.zarr"):
        (folder / name).symlink_to(folder / "chairs.zarr")
    return folder


RUNNABLE = ("info", "show", "validate", "export", "voxelize", "report")
"""Commands of the docs that run for real here: they read a store the docs folder has."""
STORES = ("mnist.zarr", "shapes.zarr", "all.zarr", "chairs.zarr")


@pytest.mark.parametrize(
    "where,words",
    [b for b in BASH if b[1][0] == "sdfkit" and b[1][1] in RUNNABLE and b[1][2] in STORES],
    ids=lambda v: str(v)[:60],
)
@pytest.mark.slow
def test_every_docs_line_that_reads_a_small_store_runs(docs_folder, tmp_path, where, words):
    """Each in a folder of its own, the stores linked in (what they write lands there)."""
    for name in STORES:
        (tmp_path / name).symlink_to(docs_folder / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", *words[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, f"{where}: {' '.join(words)}\n{run.stderr[-2000:]}"
    if "-o" in words:
        assert (tmp_path / words[words.index("-o") + 1]).exists(), f"{where}: wrote nothing"


PYTHON = _blocks("python")


@pytest.mark.parametrize("name,line,text", PYTHON, ids=[f"{n}:{k}" for n, k, _ in PYTHON])
def test_every_python_block_of_the_docs_runs(docs_folder, name, line, text):
    import torch

    loops = re.findall(r"^\s*for ([\w, ]+?) in (\w+):", text, flags=re.M)
    namespace = {
        "__name__": "__docs__",
        "epochs": 2,
        "num_samp_per_scene": 4096,
        "model": lambda points, inputs: torch.zeros(points.shape[:2]),
        "meta_step": lambda model, batch: None,
    }
    previous = os.getcwd()
    os.chdir(docs_folder)
    try:
        exec(compile(text, f"{name}:{line}", "exec"), namespace)
    finally:
        os.chdir(previous)
    for names, iterable in loops:
        if iterable == "range":
            continue
        first = names.split(",")[0].strip()
        assert first in namespace, f"{name}:{line}: `for {names} in {iterable}` never ran (the loader gave nothing)"


def test_the_readme_gives_the_suite_s_duration():
    text = (ROOT / "README.md").read_text()
    assert re.search(r"test suite .*takes about \d+ minutes on 2 cores", text.replace("\n", " ")), (
        "README.md: say how long bash scripts/test.sh takes on 2 cores"
    )


def test_setup_makes_a_venv_unless_told_system(tmp_path):
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--system" in text and "venv" in text
    run = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--nonsense"], capture_output=True, text=True)
    assert run.returncode == 2 and "unknown option" in run.stderr
    help_text = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--system" in help_text.stdout
