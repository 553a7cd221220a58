"""Geometry: meshes (``mesh``), signs on broken meshes (``sign``), 2D SDFs (``sdf2d``) and procedural shapes with exact SDFs (``shapes``)."""
