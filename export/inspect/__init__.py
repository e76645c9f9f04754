"""See what the networks learned: receptive fields from the graph, each unit's top-9 patches, a grid.

``facestyle inspect`` (``facestyle.cli.inspect``) calls :func:`inspect_model` and :func:`list_layers`.
The graph surgery needs the ``onnx`` package (the export extra): importing this package without it
raises ImportError, which the command turns into MissingDependencyError with the install hint.
"""

import onnx  # noqa: F401  (fail at import, not half-way through a run)

from .run import inspect_model, list_layers

__all__ = ["inspect_model", "list_layers"]
