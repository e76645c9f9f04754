"""See what the networks learned: receptive fields from the graph, each unit's top-9 patches, a grid.

``facestyle inspect`` (``facestyle.cli.inspect``) calls :func:`inspect_model` and :func:`list_layers`.
"""

from .run import inspect_model, list_layers

__all__ = ["inspect_model", "list_layers"]
