"""Faces nobody has named yet: kept in the gallery (bounded, SQLite and PostgreSQL), grouped into suggested people
from real LFW embeddings, named all or nothing, from the library, a watch and the CLI."""

import hashlib
import sqlite3
import subprocess
import sys
import uuid

import numpy as np
import pytest

import pgcluster
from conftest import SHARED_DATA, import_blocker, require_shared
from facestyle.cli import main
from facestyle.errors import BadInputError, GalleryError
from facestyle.face.gallery import Gallery, unknowns

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"
# Ten LFW people with four or more photos (the first ten in name order), four photos each.
LFW_PEOPLE = 10
PHOTOS_EACH = 4


@pytest.fixture(scope="module")
def analyzer(engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer

    return FaceAnalyzer.from_engines(engines_dir)


@pytest.fixture(scope="module")
def lfw(analyzer):
    """[(person, embedding, JPEG chip, quality)]: the largest face of each photo."""
    from facestyle.face.quality import face_quality
    from facestyle.images import encode_image

    root = require_shared(LFW)
    people = [d for d in sorted(root.iterdir()) if d.is_dir() and len(list(d.glob("*.jpg"))) >= PHOTOS_EACH][:LFW_PEOPLE]
    found = []
    for person in people:
        for photo in sorted(person.glob("*.jpg"))[:PHOTOS_EACH]:
            faces = analyzer.faces(str(photo))
            face = max(faces, key=lambda f: f.area)
            found.append((person.name, np.asarray(face.embedding, np.float32), encode_image(face.chip, "JPEG"),
                          face_quality(face).score))
    return found


def row(face, track, source="door", seen=1000.0):
    person, embedding, chip, quality = face
    return (source, track, seen, seen + 5, quality, embedding.tobytes(), chip)


@pytest.fixture(scope="module")
def pg_cluster():
    yield from pgcluster.started("these tests")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "people.db")
    return request.getfixturevalue("pg_cluster").create_database(f"u{uuid.uuid4().hex[:12]}")


@pytest.fixture
def gallery(analyzer, location):
    g = Gallery.open(location, analyzer.embedder.identity)
    yield g
    g.close()


CUT = unknowns.default_cut(0.6)  # the built face-embed's pair threshold is 0.6


def test_kept_faces_are_bounded_the_oldest_dropped(gallery, lfw):
    assert unknowns.keep(gallery.store, [row(lfw[i], f"t{i}") for i in range(4)], limit=6) == 0
    assert unknowns.keep(gallery.store, [row(lfw[i], f"t{i}") for i in range(4, 8)], limit=6) == 2
    kept = unknowns.faces(gallery.store, gallery.identity.dim)
    assert [f.track for f in kept] == [f"t{i}" for i in range(2, 8)]
    assert np.array_equal(kept[0].embedding, lfw[2][1]) and kept[0].quality == pytest.approx(lfw[2][3])
    assert unknowns.chips(gallery.store, [kept[-1].id]) == {kept[-1].id: lfw[7][2]}
    with pytest.raises(BadInputError, match="limit 0: expected at least 1"):
        unknowns.keep(gallery.store, [row(lfw[0], "t0")], limit=0)


def test_a_gallery_made_before_kept_faces_lists_none_and_gets_the_table_on_its_first_write(analyzer, tmp_path, lfw):
    from facestyle.streams.unknowns import prepare

    path = tmp_path / "old.db"
    Gallery.open(path, analyzer.embedder.identity).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE unknowns")
    reader = Gallery.open(path, analyzer.embedder.identity, create=False, write=False)
    assert unknowns.faces(reader.store, reader.identity.dim) == [] and unknowns.clusters(reader, CUT) == []
    prepare(reader)
    unknowns.keep(reader.store, [row(lfw[0], "t0")])
    assert len(unknowns.faces(reader.store, reader.identity.dim)) == 1
    reader.close()


def purity_and_whole(clusters, truth):
    """(share of faces in a cluster led by their own person, people whose faces are all in one cluster)."""
    pure = sum(max(np.unique([truth[f.id] for f in c.faces], return_counts=True)[1]) for c in clusters)
    homes = {}
    for c in clusters:
        for f in c.faces:
            homes.setdefault(truth[f.id], set()).add(c.id)
    return pure / sum(len(c.faces) for c in clusters), sum(len(h) == 1 for h in homes.values())


def test_lfw_people_are_grouped_without_mixing_anyone(lfw):
    faces = [unknowns.UnknownFace(i, "door", f"t{i}", 0.0, 1.0, q, e) for i, (_, e, _, q) in enumerate(lfw)]
    truth = {i: face[0] for i, face in enumerate(lfw)}
    purity, whole = purity_and_whole(unknowns.group(faces, CUT), truth)
    # Measured: purity 1.0, all 10 people whole at 0.9 x 0.6; at the pair threshold itself two people merge.
    assert purity == 1.0 and whole >= 9
    assert purity_and_whole(unknowns.group(faces, 0.7), truth)[0] < 1.0  # a looser cut mixes people


def test_a_tracks_faces_always_go_together(lfw):
    far_apart = [lfw[0], lfw[PHOTOS_EACH * 3]]  # two different people, one track
    faces = [unknowns.UnknownFace(i, "door", "t", 0.0, 1.0, q, e) for i, (_, e, _, q) in enumerate(far_apart)]
    assert [len(c.faces) for c in unknowns.group(faces, CUT)] == [2]


def keep_people(gallery, lfw, people):
    """Each photo of the first ``people`` LFW people as its own track; returns {person: cluster}."""
    names = list(dict.fromkeys(face[0] for face in lfw))[:people]
    rows = [row(face, f"{face[0]}-{i}") for i, face in enumerate(lfw) if face[0] in names]
    unknowns.keep(gallery.store, rows)
    found = unknowns.clusters(gallery, CUT)
    return {c.faces[0].track.rsplit("-", 1)[0]: c for c in found}


def state(gallery):
    return (gallery.people(), [(r["name"], r["source_sha256"]) for r in gallery.records()],
            [f.id for f in unknowns.faces(gallery.store, gallery.identity.dim)])


def test_naming_a_cluster_enrols_its_best_faces_and_forgets_them(gallery, lfw):
    by_person = keep_people(gallery, lfw, 3)
    person, cluster = next(iter(by_person.items()))
    done = unknowns.name_cluster(gallery, CUT, cluster.id, "Visitor One")
    assert done == {"cluster": cluster.id, "person": "Visitor One", "enrolled": PHOTOS_EACH, "tracks": PHOTOS_EACH,
                    "forgotten": PHOTOS_EACH}
    assert dict(gallery.people())["Visitor One"] == PHOTOS_EACH
    left = unknowns.clusters(gallery, CUT)
    assert cluster.id not in {c.id for c in left} and len(left) == len(by_person) - 1
    mine = [e for p, e, _, _ in lfw if p == person]
    assert gallery.identify(np.stack(mine), threshold=0.6)[0].identity == "Visitor One"
    from facestyle.images import load_image

    chip = next(r["chip"] for r in gallery.records() if r["name"] == "Visitor One")
    assert chip.startswith(b"\x89PNG") and load_image(chip).shape == (150, 150, 3)  # stored as enrolment stores chips
    with pytest.raises(BadInputError, match="no such cluster now"):
        unknowns.name_cluster(gallery, CUT, cluster.id, "Visitor One")


def test_a_name_already_enrolled_is_refused_unless_added(gallery, lfw):
    by_person = keep_people(gallery, lfw, 2)
    first, second = by_person.values()
    unknowns.name_cluster(gallery, CUT, first.id, "Ann")
    before = state(gallery)
    with pytest.raises(BadInputError, match="name 'Ann': already enrolled; choose another name, or add"):
        unknowns.name_cluster(gallery, CUT, second.id, "Ann")
    with pytest.raises(BadInputError, match="'unknown' is reserved"):
        unknowns.name_cluster(gallery, CUT, second.id, "Unknown")
    assert state(gallery) == before
    unknowns.name_cluster(gallery, CUT, second.id, "Ann", add=True)
    assert dict(gallery.people())["Ann"] == 2 * PHOTOS_EACH


def test_a_face_enrolled_as_someone_else_is_refused_and_nothing_changes(gallery, lfw):
    cluster = next(iter(keep_people(gallery, lfw, 1).values()))
    best = unknowns.best_faces(cluster)[0]
    chip = unknowns.chips(gallery.store, [best.id])[best.id]
    gallery.add("Bob", best.embedding, hashlib.sha256(chip).hexdigest())
    before = state(gallery)
    with pytest.raises(BadInputError, match="a face of this cluster is already enrolled as Bob"):
        unknowns.name_cluster(gallery, CUT, cluster.id, "Alice")
    assert state(gallery) == before


def test_a_failure_midway_leaves_the_gallery_unchanged(gallery, lfw, monkeypatch):
    cluster = next(iter(keep_people(gallery, lfw, 1).values()))
    before = state(gallery)
    execute = gallery.store.execute

    def failing_forget(db, sql, params=()):  # the enrolment is written; forgetting the faces then fails
        if sql.startswith("DELETE FROM unknowns"):
            raise GalleryError("disk full")
        return execute(db, sql, params)

    monkeypatch.setattr(gallery.store, "execute", failing_forget)
    with pytest.raises(GalleryError, match="disk full"):
        unknowns.name_cluster(gallery, CUT, cluster.id, "Carol")
    monkeypatch.undo()
    assert state(gallery) == before


def test_a_cluster_that_changed_since_it_was_listed_is_refused(gallery, lfw):
    cluster = next(iter(keep_people(gallery, lfw, 1).values()))
    unknowns.keep(gallery.store, [row(lfw[1], "another-visit")])  # the same person again: the cluster grows
    with pytest.raises(BadInputError, match=f"cluster '{cluster.id}': no such cluster now"):
        unknowns.name_cluster(gallery, CUT, cluster.id, "Dan")


def test_clustering_without_scikit_learn_names_the_extra():
    code = import_blocker("sklearn") + (
        "import numpy as np\nfrom facestyle.errors import MissingDependencyError\n"
        "from facestyle.face.gallery.unknowns import track_labels\n"
        "try:\n    track_labels(np.eye(3), 0.5)\nexcept MissingDependencyError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "grouping unknown faces needs scikit-learn: pip install 'facestyle[unknowns]'"


# -- from a watch -------------------------------------------------------------------------------------------------
def passing_clip(path, stranger_photo, count=10):
    """Colin Powell still, a stranger (Tony Blair) walking by beside him (real LFW faces on a photo)."""
    from stream_scenes import face_patch, scene, write_video

    still, moving = face_patch("Colin_Powell", 38), face_patch("Tony_Blair", stranger_photo)
    return write_video(path, scene([(moving, lambda i: (10 + 12 * i, 120)), (still, lambda i: (300, 60))], count))


@pytest.fixture
def powell_gallery(analyzer, tmp_path):
    from stream_scenes import face_patch

    path = tmp_path / "people.db"
    g = Gallery.open(path, analyzer.embedder.identity)
    face = analyzer.faces(face_patch("Colin_Powell", 74))[0]
    g.add("Colin Powell", face.embedding, "powell-74")
    g.close()
    return path


def test_a_watch_keeps_the_best_faces_of_the_stranger_only(analyzer, powell_gallery, tmp_path):
    from facestyle.streams import watch
    from facestyle.streams.unknowns import KeepUnknowns, prepare

    gallery = Gallery.open(powell_gallery, analyzer.embedder.identity, create=False, write=False)
    prepare(gallery)
    keeper = KeepUnknowns(analyzer, gallery)
    ends = []
    for visit, photo in enumerate((6, 94)):  # Tony Blair walks by twice, a different photo each time
        for item in watch([str(passing_clip(tmp_path / f"visit{visit}.mp4", photo))], analyzer, gallery, keep_pixels=True):
            keeper(item)
            if getattr(item, "event", None) == "track_end":
                ends.append(item.identity)
    assert sorted(ends) == ["Colin Powell", "Colin Powell", "unknown", "unknown"]
    assert (keeper.tracks, keeper.kept) == (2, 4)  # two faces each: ten frames hold two five frames apart
    [cluster] = unknowns.clusters(gallery, CUT)  # both visits: one suggested person
    assert cluster.tracks == 2 and len(cluster.faces) == 4 and all(f.quality >= 0.4 for f in cluster.faces)
    gallery.close()
    with pytest.raises(BadInputError, match=r"keep_pixels=True"):
        for item in watch([str(tmp_path / "visit0.mp4")], analyzer, None):
            keeper(item)


def test_watch_keeps_unknowns_by_default_and_the_cli_lists_and_names_them(analyzer, powell_gallery, tmp_path,
                                                                          engines_dir, capsys):
    from facestyle.images import load_image

    common = ["--gallery", str(powell_gallery), "--engines", str(engines_dir)]
    clip = passing_clip(tmp_path / "visit.mp4", 6)
    assert main(["watch", "--source", str(clip), "--no-keep-unknowns", "--quiet", *common]) == 0
    assert '"unknowns_kept"' not in capsys.readouterr().out
    assert main(["gallery", "unknowns", *common]) == 0
    assert capsys.readouterr().out.strip() == "(no unknown faces kept)"
    assert main(["watch", "--source", str(clip), "--quiet", *common]) == 0
    assert '"unknowns_kept": {"tracks": 1, "faces": 2}' in capsys.readouterr().out
    sheet = tmp_path / "sheet.jpg"
    assert main(["gallery", "unknowns", "--sheet", str(sheet), *common]) == 0
    out = capsys.readouterr()
    [line] = out.out.strip().splitlines()
    cluster = line.split("\t")[0]
    assert line.split("\t")[1:3] == ["1 track(s)", "2 face(s)"] and line.endswith(str(clip))
    assert out.err.strip() == f"{powell_gallery}: contact sheet of 1 cluster(s) written to {sheet}"
    assert load_image(sheet.read_bytes()).shape[:2] == (128, 190 + 6 * 116 + 4)
    assert main(["gallery", "name", cluster, "Colin Powell", *common]) == 2
    assert capsys.readouterr().err.strip() == (
        "facestyle gallery: error: name 'Colin Powell': already enrolled; choose another name, or add these faces "
        "to Colin Powell (--add, or \"add\": true)")
    assert main(["gallery", "name", "u0000000000", "Tony", *common]) == 2
    assert "facestyle gallery: error: cluster 'u0000000000': no such cluster now" in capsys.readouterr().err
    assert main(["gallery", "name", cluster, "Tony Blair", *common]) == 0
    enrolled = f"{powell_gallery}: 2 face(s) of cluster {cluster} (1 track(s)) enrolled as Tony Blair"
    assert capsys.readouterr().out.strip() == enrolled
    assert main(["gallery", "list", "--sheet", str(sheet), *common[:2]]) == 2
    assert capsys.readouterr().err.strip() == (
        "facestyle gallery: error: list: --sheet is for `gallery unknowns` or `gallery name` only")
