"""Sources: where shapes come from. Each lists shape jobs and provides the per-shape function."""
