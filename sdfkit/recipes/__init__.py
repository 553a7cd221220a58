"""What is sampled per shape: one module per project's recipe.

``deepsdf`` (always computed: its surface samples and normalization are every store's base):
DeepSDF's training samples; ``deepsdf-test``: DeepSDF's test samples (``PreprocessMesh -t``);
``occnet``: Occupancy Networks' and ConvONet's uniform points with occupancies and surface points;
``ifnet``: IF-Net's boundary samples and point clouds; ``ndf``: NDF's unsigned distances.
Every recipe signs through :func:`sdfkit.recipes.deepsdf.signed_mesh`, computed once per mesh.
"""

RECIPES = {
    "deepsdf": "DeepSDF's training samples: sdf/points, sdf/values (K per shape), surface/points, surface/normals",
    "deepsdf-test": "DeepSDF's test samples (variance 0.05 and 0.0005, 250,000 per shape): sdf_test/points, sdf_test/values",
    "occnet": "Occupancy Networks' points: 100,000 uniform in the padded unit cube with occupancies, 100,000 surface points "
    "with normals, OccNet's frame (occnet/*)",
    "ifnet": "IF-Net's boundary samples (sigma 0.1 and 0.01, 100,000 each) with occupancies, and point clouds of 300 and "
    "3,000 points for its voxelized inputs (ifnet/*)",
    "ndf": "NDF's unsigned distances to every face (sigma 0.08, 0.02, 0.003, 100,000 each) and a 10,000-point cloud (ndf/*)",
}
"""Recipe name -> what it adds to a shapenet store."""
