"""A persistent gallery of enrolled people for one-shot enrolment and 1:N identification.

``Gallery.open("people.db", identity)`` (SQLite, one file) or
``Gallery.open("postgresql://user@host/db", identity)`` (PostgreSQL, shared by a fleet): the same
API over both (:mod:`.api`); search in memory, exact or faiss (:mod:`.search`).
"""

from ...errors import GalleryError, GalleryModelMismatchError
from ...manifest import ModelIdentity
from .api import Gallery, Identification, Match, open_store
from .bulk import import_file
from .enrol import EnrolOutcome, Enrolment, ReembedError, enroll_faces, enroll_people, enroll_photos, reembed
from .photos import PhotoIdentification, identify_photo
from .search import AUTO_FAISS_MIN, SEARCHES
from .store import SCHEMA_VERSION, UNKNOWN

__all__ = [
    "AUTO_FAISS_MIN", "EnrolOutcome", "Enrolment", "Gallery", "GalleryError", "GalleryModelMismatchError",
    "Identification", "Match", "ModelIdentity", "PhotoIdentification", "ReembedError", "SCHEMA_VERSION", "SEARCHES",
    "UNKNOWN", "enroll_faces", "enroll_people", "enroll_photos", "identify_photo", "import_file", "open_store", "reembed",
]
