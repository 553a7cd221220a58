"""The installed version of sdfkit (one place, so that no module imports the package root)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sdfkit")
except PackageNotFoundError:  # running from a source tree that was not installed: pyproject.toml's
    __version__ = "0.2.0.dev0"
