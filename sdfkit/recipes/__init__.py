"""What is sampled per shape: one module per recipe (``deepsdf``: DeepSDF's SDF samples and surface points)."""
