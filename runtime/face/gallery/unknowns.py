"""Faces nobody has named yet: the best faces of tracks that ended "unknown", kept in the gallery, grouped into
suggested people, and enrolled under a name in one step.

Each kept face is a row of the gallery's ``unknowns`` table: the stream it came from, a key for its track, when
the track was first and last seen (seconds since the epoch), the face's quality, its embedding (by the gallery's
model) and its aligned chip (JPEG). The table is bounded: :func:`keep` drops the oldest rows beyond ``limit`` in the
same transaction that adds new ones.

:func:`clusters` groups the tracks, never splitting one: a track is the quality-weighted mean of its faces'
embeddings, and the tracks are clustered by average linkage, cut near the model's pair threshold (two groups merge
while their faces are, on average, as close as ``verify`` calls the same person, and a margin closer:
:data:`CUT_OF_PAIR_THRESHOLD`). A cluster's id is made from its
rows' ids, so it names exactly the faces that were listed: once the table changes so that the cluster has other
rows, :func:`name_cluster` refuses the old id. Clustering needs scikit-learn (extra ``unknowns``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ...errors import BadInputError, GalleryError, MissingDependencyError
from ..quality import POOR_ENROLMENT
from .names import check_name

DEFAULT_LIMIT = 2000  # rows kept; the oldest go first
ENROLLED_PER_NAME = 5  # the best faces of a cluster enrolled when it is named
# The clusters are cut at this fraction of the model's pair threshold. At the pair threshold itself, average
# linkage put 6% of the photos of 40 LFW people (4 photos each, two draws) in a cluster led by someone else; at
# 0.9 of it none, at the cost of more clusters per person. Naming a cluster that mixes two people enrols one
# under the other's name; naming a person's second cluster is one more `gallery name --add`.
CUT_OF_PAIR_THRESHOLD = 0.9
_COLUMNS = "id, source, track, first_seen, last_seen, quality, vector"


@dataclass(frozen=True)
class UnknownFace:
    """One kept face (row of the ``unknowns`` table), without its chip."""

    id: int
    source: str
    track: str
    first_seen: float
    last_seen: float
    quality: float
    embedding: np.ndarray


@dataclass(frozen=True)
class Cluster:
    """A suggested person: the faces of ``tracks`` tracks, best quality first."""

    id: str
    faces: list[UnknownFace]

    @property
    def tracks(self) -> int:
        return len({f.track for f in self.faces})

    @property
    def first_seen(self) -> float:
        return min(f.first_seen for f in self.faces)

    @property
    def last_seen(self) -> float:
        return max(f.last_seen for f in self.faces)

    @property
    def sources(self) -> list[str]:
        return sorted({f.source for f in self.faces})

    def to_json(self) -> dict:
        return {"id": self.id, "count": self.tracks, "faces": len(self.faces), "first_seen": round(self.first_seen, 3),
                "last_seen": round(self.last_seen, 3), "sources": self.sources}


# -- the table ------------------------------------------------------------------------------------------------
def keep(store, rows: list[tuple], limit: int = DEFAULT_LIMIT) -> int:
    """Add ``rows`` (source, track, first_seen, last_seen, quality, float32 vector bytes, JPEG chip) and drop the
    oldest rows beyond ``limit``, in one transaction. Returns how many were dropped."""
    if limit < 1:
        raise BadInputError(f"unknowns limit {limit}: expected at least 1")
    with store.transaction() as db:
        store.executemany(db, "INSERT INTO unknowns (source, track, first_seen, last_seen, quality, vector, chip) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        cut = store.execute(db, "SELECT id FROM unknowns ORDER BY id DESC LIMIT 1 OFFSET ?", (limit,)).fetchone()
        if cut is None:
            return 0
        return store.execute(db, "DELETE FROM unknowns WHERE id <= ?", (cut[0],)).rowcount


def faces(store, dim: int) -> list[UnknownFace]:
    """Every kept face, oldest first (none in a gallery made before faces were kept)."""
    if not store.has_table("unknowns"):
        return []
    try:
        rows = store.execute(store.connect(), f"SELECT {_COLUMNS} FROM unknowns ORDER BY id").fetchall()
    except store.errors as exc:
        raise store.broken(exc) from None
    return [UnknownFace(int(i), s, t, float(a), float(b), float(q), _vector(v, dim)) for i, s, t, a, b, q, v in rows]


def chips(store, ids: list[int]) -> dict[int, bytes]:
    """The JPEG chips of the faces ``ids``."""
    found = {}
    for start in range(0, len(ids), 500):
        chunk = [int(i) for i in ids[start:start + 500]]
        rows = store.execute(store.connect(), f"SELECT id, chip FROM unknowns WHERE id IN ({', '.join('?' * len(chunk))})",
                             chunk).fetchall()
        found.update((int(i), bytes(c)) for i, c in rows)
    return found


def _vector(blob, dim: int) -> np.ndarray:
    vector = np.frombuffer(bytes(blob), np.float32)
    if vector.shape != (dim,):
        raise GalleryError(f"unknown face embedding of {vector.size} floats: expected {dim} (the gallery's model)")
    return vector


# -- clustering -----------------------------------------------------------------------------------------------
def _agglomerative():
    try:
        from sklearn.cluster import AgglomerativeClustering
    except ImportError:
        raise MissingDependencyError("grouping unknown faces needs scikit-learn: pip install 'facestyle[unknowns]'") from None
    return AgglomerativeClustering


def track_labels(embeddings: np.ndarray, cut: float) -> np.ndarray:
    """A cluster label per row of ``embeddings`` (one per track): average linkage, merged while under ``cut``."""
    if len(embeddings) < 2:
        return np.zeros(len(embeddings), np.int64)
    model = _agglomerative()(n_clusters=None, metric="euclidean", linkage="average", distance_threshold=cut)
    return model.fit_predict(np.asarray(embeddings, np.float64))


def cluster_id(faces_: list[UnknownFace]) -> str:
    """Made from the rows' ids: the same faces, the same id."""
    ids = ",".join(str(i) for i in sorted(f.id for f in faces_))
    return "u" + hashlib.sha1(ids.encode()).hexdigest()[:10]


def group(faces_: list[UnknownFace], cut: float) -> list[Cluster]:
    """The faces as suggested people, most tracks first (then most faces, then the latest seen); a track's faces
    stay together."""
    tracks: dict[str, list[UnknownFace]] = {}
    for face in faces_:
        tracks.setdefault(face.track, []).append(face)
    keys = list(tracks)
    means = [np.average(np.stack([f.embedding for f in tracks[k]]), axis=0,
                        weights=[max(f.quality, 1e-6) for f in tracks[k]]) for k in keys]
    labels = track_labels(np.stack(means) if means else np.zeros((0, 1)), cut)
    members: dict[int, list[UnknownFace]] = {}
    for key, label in zip(keys, labels):
        members.setdefault(int(label), []).extend(tracks[key])
    found = [Cluster(cluster_id(m), sorted(m, key=lambda f: (-f.quality, f.id))) for m in members.values()]
    return sorted(found, key=lambda c: (-c.tracks, -len(c.faces), -c.last_seen, c.id))


def default_cut(pair_threshold: float) -> float:
    """The clustering cut for a model whose pair (``verify``) threshold is ``pair_threshold``."""
    return CUT_OF_PAIR_THRESHOLD * pair_threshold


def clusters(gallery, cut: float) -> list[Cluster]:
    """The gallery's kept faces as suggested people, cut at ``cut`` (:func:`default_cut`; see :func:`group`)."""
    return group(faces(gallery.store, gallery.identity.dim), cut)


def find(gallery, cut: float, wanted: str) -> Cluster:
    """The cluster ``wanted`` as the faces stand now, or BadInputError when no cluster has that id any more."""
    for cluster in clusters(gallery, cut):
        if cluster.id == wanted:
            return cluster
    raise BadInputError(f"cluster {wanted!r}: no such cluster now (the unknown faces changed since it was listed, "
                        "or it was named); list them again with `facestyle gallery unknowns`")


# -- naming ---------------------------------------------------------------------------------------------------
def best_faces(cluster: Cluster, most: int = ENROLLED_PER_NAME) -> list[UnknownFace]:
    """Up to ``most`` faces good enough to enrol from, best first, taken from as many tracks as there are
    (each track's best, then each one's second best, ...) so the enrolment shows the person more than one way."""
    good = [f for f in cluster.faces if f.quality >= POOR_ENROLMENT]
    by_track: dict[str, list[UnknownFace]] = {}
    for face in good:  # already best first
        by_track.setdefault(face.track, []).append(face)
    rounds = [face for rank in range(most) for face in
              sorted((fs[rank] for fs in by_track.values() if len(fs) > rank), key=lambda f: (-f.quality, f.id))]
    return rounds[:most]


def name_cluster(gallery, cut: float, wanted: str, name: str, add: bool = False) -> dict:
    """Enrol cluster ``wanted``'s best faces as ``name`` and forget all its faces, in one transaction.

    Refused, with nothing changed: a name :func:`.names.check_name` refuses; a name already enrolled (unless
    ``add``: these faces join theirs); a cluster id that no longer matches; a cluster without a face of
    enrolment quality; a face already enrolled under another name (as ``enroll`` refuses it)."""
    from ...images import encode_image, load_image

    name = check_name(name)
    cluster = find(gallery, cut, wanted)
    chosen = best_faces(cluster)
    if not chosen:
        raise BadInputError(f"cluster {wanted}: no face good enough to enrol (best quality "
                            f"{cluster.faces[0].quality:.2f}, under {POOR_ENROLMENT:.2f})")
    store = gallery.store
    jpegs = chips(store, [f.id for f in chosen])
    pngs = [encode_image(load_image(jpegs[f.id])) for f in chosen]  # stored lossless, as enrolment stores chips
    hashes = [hashlib.sha256(jpegs[f.id]).hexdigest() for f in chosen]
    ids = [f.id for f in cluster.faces]
    with store.transaction() as db:  # embeddings only added: readers extend their matrix
        _check_unchanged(store, db, wanted, ids)
        _check_enrolable(store, db, name, hashes, add)
        rows = gallery.rows([name] * len(chosen), np.stack([f.embedding for f in chosen]), hashes,
                            files=[f"{f.source} (unknown track {f.track})" for f in chosen], chips=pngs)
        added = store._insert(db, rows)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            store.execute(db, f"DELETE FROM unknowns WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
    return {"cluster": wanted, "person": name, "enrolled": added, "tracks": cluster.tracks, "forgotten": len(ids)}


def _check_unchanged(store, db, wanted: str, ids: list[int]) -> None:
    """Under the write lock: every face of the cluster is still there (another process may have named or
    dropped some since it was read)."""
    present = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        present += store.execute(db, f"SELECT COUNT(*) FROM unknowns WHERE id IN ({', '.join('?' * len(chunk))})",
                                 chunk).fetchone()[0]
    if present != len(ids):
        raise BadInputError(f"cluster {wanted!r}: its faces changed meanwhile; list them again with "
                            "`facestyle gallery unknowns`")


def _check_enrolable(store, db, name: str, hashes: list[str], add: bool) -> None:
    if not add and store.execute(db, "SELECT 1 FROM people WHERE name = ?", (name,)).fetchone() is not None:
        raise BadInputError(f"name {name!r}: already enrolled; choose another name, or add these faces to "
                            f"{name} (--add, or \"add\": true)")
    owners = store._owners(db, hashes)
    others = sorted({o for names in owners.values() for o in names if o != name})
    if others:
        raise BadInputError(f"name {name!r}: a face of this cluster is already enrolled as {others[0]}")
