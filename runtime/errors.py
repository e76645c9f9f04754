"""One exception hierarchy for the whole package.

The CLI maps every ``FacestyleError`` to exit code 2 and a one-line message, so each
message names the input at fault and says what was expected.
"""


class FacestyleError(Exception):
    """Base class of every error facestyle raises on purpose."""


class BadImageError(FacestyleError, ValueError):
    """An image file or array that cannot be used (unreadable, wrong size, wrong mode)."""


class BadInputError(FacestyleError, ValueError):
    """An inference feed that does not match the model's declared inputs."""


class ModelFormatError(FacestyleError):
    """A model file that is truncated, of the wrong kind, or lacks its contract."""

    def __init__(self, message: str, path=None, offset: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if offset is not None:
                where += f" at byte {offset}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.offset = offset


class ManifestError(FacestyleError):
    """A manifest that is missing, unreadable or does not describe its artifact."""


class ParityError(FacestyleError):
    """An exported artifact whose outputs differ from the reference beyond tolerance."""

    def __init__(self, message: str, failures=()):
        super().__init__(message)
        self.failures = list(failures)


class EngineMismatchError(FacestyleError):
    """An engine built for another ONNX file, precision, GPU or library version."""


class BackendUnavailableError(FacestyleError):
    """An inference backend or execution provider that is not installed or usable here."""


class MissingDependencyError(FacestyleError):
    """An optional dependency (an extra) that the requested command needs."""


class NoFaceError(FacestyleError):
    """An image in which no face was found where one was required."""


class GalleryError(FacestyleError):
    """A gallery file that is corrupted, of another schema, or not a gallery."""


class GalleryModelMismatchError(GalleryError):
    """A gallery whose embeddings come from another model or precision than the one in use."""


class BatcherError(FacestyleError):
    """A micro-batcher that cannot take or finish a request (see ``facestyle.batching``)."""


class BatcherConfigError(BatcherError, ValueError):
    """A micro-batcher created with settings it cannot work with (a batch of 0, an unknown policy)."""


class BatcherFullError(BatcherError):
    """A request refused because the batcher's queue is full (``when_full="reject"``, or a block timed out)."""


class BatcherClosedError(BatcherError):
    """A request submitted to a batcher that is closed or closing."""


class TrainingRegressionError(FacestyleError):
    """A trained model that does worse on its held-out data than the model it started from."""
