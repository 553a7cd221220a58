"""sdfkit: datasets of signed distance functions for neural implicit shape models.

    >>> import sdfkit
    >>> ds = sdfkit.open_dataset("mnist.zarr", split="train")

Sign convention everywhere: negative inside, positive outside (DeepSDF, MetaSDF).

The package follows the way data flows: ``sources/`` (where shapes come from: MNIST, ShapeNet
and mesh folders) -> ``geometry/`` (meshes, signs, 2D SDFs, procedural shapes) -> ``recipes/``
(what is sampled per shape) -> ``pipeline/`` (one resumable, parallel run for every prepare
command) -> ``store/`` (the format, reading, validation, reports, locks) -> ``builders/`` (what
reads a store: exports, voxels, renders, figures).
"""

from sdfkit._version import __version__
from sdfkit.errors import SdfkitError
from sdfkit.store.dataset import SdfDataset, open_dataset

__all__ = ["__version__", "SdfDataset", "SdfkitError", "open_dataset"]
