"""sdfkit: datasets of signed distance functions for neural implicit shape models.

    >>> import sdfkit
    >>> ds = sdfkit.open_dataset("mnist.zarr", split="train")

Sign convention everywhere: negative inside, positive outside (DeepSDF, MetaSDF).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sdfkit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0.dev0"

from sdfkit.dataset import SdfDataset, open_dataset  # noqa: E402
from sdfkit.errors import SdfkitError  # noqa: E402

__all__ = ["__version__", "SdfDataset", "SdfkitError", "open_dataset"]
