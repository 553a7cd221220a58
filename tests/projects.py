"""The projects' own code, to read sdfkit's exports as the projects read them.

Their code is not sdfkit's to commit: it comes from snapshots of their repositories, looked for
under ``$SDFKIT_PROJECTS`` and ``/work/.mirror`` as ``<owner>+<name>/repo`` (a bare snapshot) or
``<owner>+<name>`` / ``<name>`` (a clone). A test whose project is not there is skipped, saying
how to get it (``git clone https://github.com/<owner>/<name> $SDFKIT_PROJECTS/<name>``).

Their code runs in a subprocess, after :data:`SHIMS`: modules that need compiled extensions
(CUDA, Cython) become empty modules, torchvision (compiled, not installed here) gives its
``transforms.Compose`` (apply in turn) alone, and the aliases that their pinned numpy (1.15) and
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
if "torchvision" in STUBS:  # not installed here (its ops are compiled); the one class they use
    import torchvision.transforms

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __call__(self, value):
            for transform in self.transforms:
                value = transform(value)
            return value

    torchvision.transforms.Compose = Compose
'''


def project(repository: str, paths: list[str], dest: Path) -> Path:
    """``paths`` of the snapshot of ``repository`` ("owner/name") extracted into ``dest``; skips
    the test when no snapshot is found."""
    owner, name = repository.split("/")
    roots = [os.environ.get("SDFKIT_PROJECTS"), "/work/.mirror"]
    for root in filter(None, roots):
        for candidate in (Path(root) / f"{owner}+{name}" / "repo", Path(root) / f"{owner}+{name}", Path(root) / name):
            git_dir = candidate if (candidate / "HEAD").is_file() else candidate / ".git"
            if (git_dir / "HEAD").is_file():
                dest.mkdir(parents=True, exist_ok=True)
                archive = subprocess.run(
                    ["git", f"--git-dir={git_dir}", "archive", "HEAD", *paths], capture_output=True, check=True
                )
                subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
                return dest
    pytest.skip(
        f"{repository}'s code is not here: git clone https://github.com/{repository} "
        f"$SDFKIT_PROJECTS/{name} to read the export with it"
    )


def run_their_code(code: str, *, path: Path, cwd: Path, stubs: list[str], timeout: float = 600) -> dict:
    """Run ``code`` (which prints one JSON object last) with the project at ``path`` importable,
    after :data:`SHIMS` with ``stubs``; returns that object."""
    script = f"import sys\nsys.path.insert(0, {str(path)!r})\nSTUBS = {stubs!r}\n{SHIMS}\n{textwrap.dedent(code)}"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
