"""A backend whose model runs elsewhere (a Triton server, or a BLS call inside one).

It follows the same protocol as the in-process backends, so ``FaceEmbedder`` and ``FaceDetector`` run
their own preprocessing and decoding unchanged, with only the network call in between: results equal
the in-process ones because the code around the model is the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..backends.base import Backend, TensorMeta

# feed -> {output name: array}; raises FacestyleError on a failed call
Call = Callable[[Mapping[str, np.ndarray], Sequence[str]], dict]


class RemoteBackend(Backend):
    """``call(feed, output_names)`` runs the model; ``metadata`` is its contract (``facestyle.*`` keys)."""

    name = "remote"

    def __init__(self, call: Call, metadata: Mapping[str, str], inputs: Sequence[TensorMeta], outputs: Sequence[str],
                 name: str = "remote"):
        super().__init__()
        self._call, self._meta, self._input_list, self._outputs = call, dict(metadata), list(inputs), list(outputs)
        self.name = name

    def _activate(self) -> None:
        pass

    def _deactivate(self) -> None:
        pass

    def _input_metadata(self) -> list[TensorMeta]:
        return self._input_list

    def _metadata(self) -> dict[str, str]:
        return dict(self._meta)

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._call(feed, self._outputs)


def contract_backend(call: Call, metadata: Mapping[str, str], batched_dims: int = 4, name: str = "remote") -> RemoteBackend:
    """A remote backend for a facestyle model whose contract names one float32 input and one output."""
    import json

    input_name = json.loads(metadata["facestyle.input_name"])
    output_name = json.loads(metadata["facestyle.output_name"])
    return RemoteBackend(call, metadata, [TensorMeta(input_name, np.dtype(np.float32), (None,) * batched_dims)],
                         [output_name], name)
