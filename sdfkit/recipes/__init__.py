"""What is sampled per shape: one module per project's recipe, one registry of them.

``deepsdf`` (always computed: its surface samples and normalization are every store's base):
DeepSDF's training samples; ``deepsdf-test``: DeepSDF's test samples (``PreprocessMesh -t``);
``occnet``: Occupancy Networks' and ConvONet's uniform points with occupancies, surface points
and voxels; ``ifnet``: IF-Net's boundary samples, point clouds and voxels; ``ndf``: NDF's unsigned
distances. Every recipe signs through :func:`sdfkit.recipes.deepsdf.signed_mesh`, computed once
per mesh. What a recipe is, and how another package adds one: :mod:`sdfkit.recipes.base`.
"""

from sdfkit.recipes.base import (
    ExportContext,
    Exporter,
    Recipe,
    exporters,
    recipe,
    recipes,
    sample_sets,
    specs_for,
)

__all__ = ["Recipe", "Exporter", "ExportContext", "recipes", "recipe", "exporters", "sample_sets", "specs_for"]
