"""The projects' own code, to read sdfkit's exports as the projects read them.

Their code is not sdfkit's to commit: it comes from snapshots of their repositories, looked for
under ``$SDFKIT_PROJECTS`` (else ``/work/.mirror``) as ``<owner>+<name>/repo`` (a bare snapshot) or
``<owner>+<name>`` / ``<name>`` (a clone). A test whose project is not there is skipped, saying
how to get it (``git clone https://github.com/<owner>/<name> $SDFKIT_PROJECTS/<name>``).

Their code runs in a subprocess, after :data:`SHIMS`: modules that need compiled extensions
(CUDA, Cython) become empty modules, torchvision (compiled for its own torch build) gives the
four transforms they use (Compose, ToTensor, Resize, Normalize, written here with torch), and the aliases that their pinned numpy (1.15) and
PyYAML (3.13) had and today's lack come back. Nothing else of theirs changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHIMS = '''
import importlib, importlib.abc, importlib.machinery, sys, types
import numpy as np
import yaml

np.int = int  # numpy 1.15's alias of int (binvox_rw's defaults)
_yaml_load = yaml.load
yaml.load = lambda stream, Loader=yaml.FullLoader: _yaml_load(stream, Loader=Loader)  # PyYAML 3.13's default


class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty modules for these prefixes, whose attributes are empty modules too."""

    def __init__(self, prefixes):
        self.prefixes = prefixes

    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in self.prefixes):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Stub(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


class _Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self.__name__} is a stub: it needs a compiled extension")


sys.meta_path.insert(0, _Stubs(STUBS))
if "torchvision" in STUBS:  # its wheels' compiled ops need their own torch build: the transforms they use
    import torch
    import torchvision.transforms as transforms

    class Compose:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, value):
            for step in self.steps:
                value = step(value)
            return value

    class ToTensor:  # HWC uint8 -> CHW float in [0, 1]
        def __call__(self, image):
            return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255

    class Resize:  # the shorter side to `size`, bilinear with antialiasing
        def __init__(self, size):
            self.size = size

        def __call__(self, image):
            h, w = image.shape[-2:]
            scale = self.size / min(h, w)
            shape = (round(h * scale), round(w * scale))
            return torch.nn.functional.interpolate(image[None], shape, mode="bilinear", antialias=True)[0]

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

        def __call__(self, image):
            return (image - self.mean) / self.std

    transforms.Compose, transforms.ToTensor, transforms.Resize, transforms.Normalize = Compose, ToTensor, Resize, Normalize
'''


def snapshot(repository: str) -> Path | None:
    """The git folder of a snapshot of ``repository`` ("owner/name"), or None."""
    owner, name = repository.split("/")
    roots = [os.environ["SDFKIT_PROJECTS"]] if os.environ.get("SDFKIT_PROJECTS") else ["/work/.mirror"]
    for root in roots:
        for candidate in (Path(root) / f"{owner}+{name}" / "repo", Path(root) / f"{owner}+{name}", Path(root) / name):
            git_dir = candidate if (candidate / "HEAD").is_file() else candidate / ".git"
            if (git_dir / "HEAD").is_file():
                return git_dir
    return None


def needs(repository: str, modules: tuple[str, ...] = ()):
    """Skip the test (before its fixtures are made) when there is no snapshot of ``repository``
    or a module its code imports is missing (``pip install -e .[projects]``)."""
    import importlib.util

    name = repository.split("/")[1]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if snapshot(repository) is None:
        reason = f"{repository}'s code is not here: git clone https://github.com/{repository} $SDFKIT_PROJECTS/{name}"
    else:
        reason = f"{repository}'s code imports {', '.join(missing)}: pip install -e .[projects]"
    return pytest.mark.skipif(snapshot(repository) is None or bool(missing), reason=reason)


def project(repository: str, paths: list[str], dest: Path, commit: str = "HEAD") -> Path:
    """``paths`` of the snapshot of ``repository`` (at ``commit``: a project's pin of another)
    extracted into ``dest``; skips the test when no snapshot is found."""
    git_dir = snapshot(repository)
    if git_dir is not None:
        _extract(git_dir, paths, dest, commit)
        return dest
    name = repository.split("/")[1]
    pytest.skip(
        f"{repository}'s code is not here: git clone https://github.com/{repository} "
        f"$SDFKIT_PROJECTS/{name} to read the export with it"
    )


def _extract(git_dir: Path, paths: list[str], dest: Path, commit: str = "HEAD") -> None:
    """The files under ``paths`` at ``commit``, into ``dest``; blobs the snapshot lacks (its
    largest files) are left out."""
    listed = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "-z", commit, "--", *paths], capture_output=True, check=True
    ).stdout.split(b"\0")
    entries = [line.split(b"\t", 1) for line in listed if line]
    blobs = [(meta.split()[2], path.decode()) for meta, path in entries if meta.split()[1] == b"blob"]
    batch = subprocess.run(
        ["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
        input=b"".join(sha + b"\n" for sha, _ in blobs),
        capture_output=True,
        check=True,
    ).stdout
    at = 0
    for _, path in blobs:
        header_end = batch.index(b"\n", at)
        header = batch[at:header_end].split()
        at = header_end + 1
        if header[-1] == b"missing":
            continue
        size = int(header[2])
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(batch[at : at + size])
        at += size + 1


def run_their_code(code: str, *, path: Path, cwd: Path, stubs: list[str], timeout: float = 600) -> dict:
    """Run ``code`` (which prints one JSON object last) with the project at ``path`` importable,
    after :data:`SHIMS` with ``stubs``; returns that object."""
    script = f"import sys\nsys.path.insert(0, {str(path)!r})\nSTUBS = {stubs!r}\n{SHIMS}\n{textwrap.dedent(code)}"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
