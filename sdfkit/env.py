"""What ``sdfkit env`` prints: versions and hardware, for bug reports."""

from __future__ import annotations

import importlib
import platform
import sys

from sdfkit._version import __version__

__all__ = ["environment"]

_PACKAGES = ("numpy", "scipy", "skimage", "zarr", "torch", "open3d", "trimesh", "pyrender", "OpenGL", "dask")


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # missing, or broken native library
        return f"not available ({type(exc).__name__})"
    return str(getattr(mod, "__version__", "unknown"))


def environment() -> dict[str, str]:
    """Versions of sdfkit, Python and the libraries it uses, and whether a GPU is usable."""

    info = {
        "sdfkit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for name in _PACKAGES:
        info[name] = _version(name)
    gpu = "no"
    try:
        # torch, loaded where used (sdfkit itself does not need it)
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            gpu += f" (CUDA {torch.version.cuda})"
    except Exception:
        gpu = "unknown (torch not importable)"
    info["gpu"] = gpu
    return info
