"""The package as a user installs it: one version, and every package the code imports declared."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from conftest import ROOT

from sdfkit import _version

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOT_DECLARED = {"pyrender"}
"""Installed by scripts/setup.sh with ``--no-deps`` after the ``render`` extra: its own PyOpenGL
pin cannot render headless, so naming it in pyproject.toml would make pip install that pin."""


def _distribution_name(name: str) -> str:
    return re.split(r"[<>=!~\[; ]", name, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_one_version():
    """pyproject.toml's version is the one a source tree reports when sdfkit is not installed."""
    source = (ROOT / "sdfkit" / "_version.py").read_text()
    fallback = re.search(r'__version__ = "([^"]+)"', source).group(1)
    assert PYPROJECT["project"]["version"] == fallback
    assert _version.__version__ in (fallback, importlib.metadata.version("sdfkit"))


def test_every_imported_package_is_declared():
    """Each third-party module that sdfkit/, metasdf/ and cli/ import (at the top or inside a
    function) belongs to a distribution that pyproject.toml names, as a dependency or in an extra."""
    declared = {_distribution_name(d) for d in PYPROJECT["project"]["dependencies"]}
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        declared |= {_distribution_name(d) for d in extra}
    ours = {"sdfkit", "metasdf", "cli"}
    owners = importlib.metadata.packages_distributions()
    missing = {}
    for folder in ours:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in ours or top in NOT_DECLARED or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    distributions = {_distribution_name(d) for d in owners.get(top, [top])}
                    if not distributions & declared:
                        missing.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
