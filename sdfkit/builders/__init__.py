"""What reads a finished store: exports to other projects' layouts (``export``), voxel grids (``voxels``), renders (``render``) and pictures (``figures``)."""
