"""facestyle on Triton Inference Server: the client (:class:`TritonFaces`), the Python-backend models
``facestyle export-triton`` puts in a repository (``facestyle.triton.models``), a local server from
PyPI's ``nvidia-pytriton`` (``facestyle.triton.local``) and the bench cases (``facestyle.triton.bench``).

tritonclient (extra ``triton``) is imported only when a client is made.
"""

from __future__ import annotations

__all__ = ["TritonFaces"]


def __getattr__(name: str):
    if name == "TritonFaces":
        from .client import TritonFaces

        return TritonFaces
    raise AttributeError(f"module 'facestyle.triton' has no attribute {name!r}")
