"""The ``sdfkit`` command line (installed as ``sdfkit_cli``): parsing and printing only.

Each command imports the library modules it calls inside its body: ``sdfkit --help`` and every
command load only what they use (torch, open3d and trimesh take seconds together).
"""
