"""metasdf: MetaSDF and its baselines on sdfkit stores.

2D (``prepare-mnist`` stores): MetaSDF, auto-decoder, hypernetwork auto-decoder and conditional
neural process (``models``, tasks from ``data``); 3D (``prepare-shapenet`` stores): MetaSDF with a
sign head and a distance head, DeepSDF and a PointNet encoder (``models3d``, ``data3d``). Training
(``train``: configs, presets, run folders, torchrun), evaluation (``evaluate``, ``evaluate3d``)
and meshing with its metrics (``reconstruct``). The data library ``sdfkit`` does not depend on
this package.
"""
