"""The backend protocol every inference engine follows (after NVIDIA Polygraphy's runners).

``activate()`` loads what the backend needs, ``infer(feed)`` runs one batch, ``deactivate()``
frees it. The base class checks each feed against the model's declared inputs, so a backend
only ever sees well-formed feeds and every backend reports bad input the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError, FacestyleError


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]  # None = dynamic

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.name}[{dims}]"


class Backend(ABC):
    """Abstract runner. Use as a context manager or call activate()/deactivate()."""

    name = "backend"

    def __init__(self):
        self._active = False
        self._inputs: dict[str, TensorMeta] = {}

    # -- protocol -----------------------------------------------------------------------
    def activate(self) -> Backend:
        if not self._active:
            self._activate()
            self._inputs = {m.name: m for m in self._input_metadata()}
            self._active = True
        return self

    def deactivate(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._active:
            raise FacestyleError(f"{self.name} backend is not active: call activate() first")
        self._check_feed(feed)
        return self._infer(feed)

    @property
    def input_metadata(self) -> dict[str, TensorMeta]:
        self.activate()
        return dict(self._inputs)

    @property
    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (its contract)."""
        self.activate()
        return self._metadata()

    def __enter__(self) -> Backend:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # -- for subclasses -------------------------------------------------------------------
    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    @abstractmethod
    def _input_metadata(self) -> list[TensorMeta]: ...

    @abstractmethod
    def _metadata(self) -> dict[str, str]: ...

    @abstractmethod
    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    # -- the one place feeds are checked ----------------------------------------------------
    def _check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        missing = sorted(set(self._inputs) - set(feed))
        unexpected = sorted(set(feed) - set(self._inputs))
        if missing or unexpected:
            raise BadInputError(
                f"feed has inputs {sorted(feed)}, the model takes {sorted(self._inputs)}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {unexpected})" if unexpected else "")
            )
        for name, meta in self._inputs.items():
            array = feed[name]
            if not isinstance(array, np.ndarray):
                raise BadInputError(f"input {name!r}: expected a numpy array, got {type(array).__name__}")
            fits = array.dtype == meta.dtype and array.ndim == len(meta.shape)
            fits = fits and all(want is None or want == got for want, got in zip(meta.shape, array.shape))
            if not fits:
                raise BadInputError(
                    f"input {name!r}: expected {meta.describe()}, got {array.dtype.name}{list(array.shape)}"
                )
