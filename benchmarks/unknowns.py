"""Strangers in the streams benchmark's scenes: are the faces kept of tracks that end "unknown" grouped into one
suggested person per stranger, and only them?

    python benchmarks/unknowns.py --json benchmarks/results/unknowns-streams.json --sheet /tmp/unknowns-sheet.jpg

The scenes are the streams benchmark's (:mod:`streams`: LFW people walking through a BSDS500 photo, each
turning to a second photo mid-walk, one crossing in front of another), with ``--strangers`` strangers each. A
stranger comes back: scene k+1's first stranger is scene k's last, showing their two photos in the other order,
so most strangers are seen on two visits (two scenes, two watches). The gallery holds the enrolled people only.
Each scene is watched as ``facestyle watch`` does by default (motion-gated detection) with the unknowns kept
(:class:`facestyle.streams.unknowns.KeepUnknowns`), all into one gallery; the kept faces are then clustered at
the default cut. A kept track's truth is the person whose face boxes it overlaps (IoU >= 0.5) on most of its
frames. Reported: purity (the share of kept tracks in a cluster whose majority is their own person), how many
strangers end up in exactly one cluster (all their kept tracks together) and in exactly one pure one, and the
enrolled people that ended a track unknown (these land in the clusters too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
MATCH_IOU = 0.5


def plan_visits(seeds, people: int, strangers: int, seconds: float) -> list[dict]:
    """The streams benchmark's plans, each scene's first stranger being the previous scene's last one again."""
    from streams import plan_scene

    plans = [plan_scene(seed, people, strangers, seconds) for seed in seeds]
    for before, plan in zip(plans, plans[1:]):
        back, returning = before["walks"][-1], plan["walks"][people]
        returning.photos = list(reversed(back.photos))  # the same stranger, their photos the other way round
    return plans


def render(plan: dict, folder: Path) -> tuple[Path, dict]:
    """The scene as an .mp4 and its truth (as :func:`streams.make_scene`, from a given plan)."""
    from streams import write_scene

    path, faces = write_scene(plan, folder / f"scene-{plan['seed']}.mp4")
    people = {w.pid: _person(w) for w in plan["walks"]}
    return path, {"faces": faces, "people": people, "enrolled": plan["enrolled"]}


def _person(walk) -> str:
    """A walk's person: their LFW folder name (a stranger's too: the same stranger in two scenes is one person)."""
    return Path(walk.photos[0]).parent.name


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    inter = ix * iy
    return inter / (area(a) + area(b) - inter)


def watch_scene(video: Path, truth: dict, analyzer, gallery, keeper, options: dict) -> dict:
    """Watch one scene into ``keeper``; {kept track key: the person it shows (None: nobody)}."""
    from facestyle.streams import Event, FrameResult, watch

    votes: dict[int, Counter] = {}
    keys = {}
    for item in watch([str(video)], analyzer, gallery, keep_pixels=True, **options):
        if isinstance(item, FrameResult):
            for face in item.faces:
                best = max(truth["faces"][item.frame], key=lambda t: _iou(face.box, t["box"]), default=None)
                hit = best is not None and _iou(face.box, best["box"]) >= MATCH_IOU
                votes.setdefault(face.track, Counter())[truth["people"][best["id"]] if hit else None] += 1
        elif isinstance(item, Event) and item.event == "track_end":
            keys[item.track] = keeper.key_of(item.source, item.track)
        kept_before = keeper.tracks
        keeper(item)
        if isinstance(item, Event) and item.event == "track_end" and keeper.tracks == kept_before:
            keys.pop(item.track, None)  # named, or no face good enough: nothing kept
    return {key: votes[track].most_common(1)[0][0] for track, key in keys.items()}


def score(clusters, truth_of: dict, strangers: set[str]) -> dict:
    """Purity over kept tracks, and where each stranger's kept tracks went."""
    pure_tracks, homes, pure_clusters = 0, {}, set()
    for cluster in clusters:
        people = [truth_of[t] for t in {f.track for f in cluster.faces}]
        top, count = Counter(people).most_common(1)[0]
        pure_tracks += count
        if count == len(people):
            pure_clusters.add(cluster.id)
        for person in people:
            homes.setdefault(person, set()).add(cluster.id)
    kept = sum(len({f.track for f in c.faces}) for c in clusters)
    seen = [s for s in strangers if s in homes]
    return {"kept_tracks": kept, "clusters": len(clusters), "purity": round(pure_tracks / max(kept, 1), 4),
            "pure_clusters": len(pure_clusters),
            "strangers": len(strangers), "strangers_kept": len(seen),
            "strangers_in_one_cluster": sum(len(homes[s]) == 1 for s in seen),
            "strangers_in_one_pure_cluster": sum(len(homes[s]) == 1 and homes[s] <= pure_clusters for s in seen),
            "strangers_clusters": {s: len(homes[s]) for s in sorted(seen)},
            "kept_tracks_of_enrolled": sum(1 for t in truth_of.values() if t is not None and t not in strangers),
            "kept_tracks_of_nobody": sum(1 for t in truth_of.values() if t is None)}


def run(args) -> dict:
    sys.path.insert(0, str(HERE))
    from _machine import cpu_model
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.gallery import unknowns
    from facestyle.face.gallery.contact_sheet import contact_sheet
    from facestyle.manifest import atomic_write_bytes
    from facestyle.streams.unknowns import KeepUnknowns, prepare
    from streams import build_gallery

    work = Path(args.work or tempfile.mkdtemp(prefix="facestyle-unknowns-bench-"))
    (work / "scenes").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    plans = plan_visits(range(args.seed, args.seed + args.scenes), args.people, args.strangers, args.seconds)
    scenes = [render(plan, work / "scenes") for plan in plans]
    enrolled = {name: photo for _, truth in scenes for name, photo in truth["enrolled"].items()}
    strangers = {p for plan in plans for w in plan["walks"] if w.identity == "stranger" for p in [_person(w)]}
    analyzer = FaceAnalyzer.from_engines(args.engines)
    gallery, faceless = build_gallery(analyzer, enrolled, len(enrolled), work)
    prepare(gallery)
    keeper, truth_of = KeepUnknowns(analyzer, gallery), {}
    for number, (video, truth) in enumerate(scenes):
        truth_of.update(watch_scene(video, truth, analyzer, gallery, keeper, {"motion": True}))
        print(f"  scene {number}: {keeper.tracks} unknown track(s) kept so far", file=sys.stderr)
    cut = unknowns.default_cut(analyzer.threshold)
    found = unknowns.clusters(gallery, cut)
    if args.sheet:
        ids = [f.id for c in found[:40] for f in c.faces[:6]]
        atomic_write_bytes(args.sheet, contact_sheet(found, unknowns.chips(gallery.store, ids)))
    loose = {"cut": round(analyzer.threshold, 4), **score(unknowns.clusters(gallery, analyzer.threshold), truth_of, strangers)}
    return {"machine": cpu_model(), "cores": os.cpu_count(),
            "model": f"face-embed {analyzer.embedder.identity.sha256[:12]}, pair threshold {analyzer.threshold}",
            "scenes": {"count": len(scenes), "seconds": args.seconds, "people": args.people,
                       "strangers_per_scene": args.strangers, "seeds": [p["seed"] for p in plans],
                       "distinct_strangers": len(strangers),
                       "strangers_on_two_visits": len(plans) - 1 if args.strangers else 0},
            "gallery_people": len(gallery.people()), "enrolment_photos_without_face": faceless,
            "watch": {"motion": True}, "kept_faces": keeper.kept,
            "default_cut": {"cut": round(cut, 4), **score(found, truth_of, strangers)},
            "at_pair_threshold": loose, "seconds": round(time.perf_counter() - started, 1)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--sheet", type=Path, help="write the contact sheet of the clusters here (JPEG)")
    parser.add_argument("--work", help="folder for the scenes and the gallery (default: a new temp folder)")
    parser.add_argument("--engines", default=None, help="face engines folder (default: facestyle's)")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=9.0, help="length of each scene")
    parser.add_argument("--people", type=int, default=3, help="enrolled people per scene")
    parser.add_argument("--strangers", type=int, default=2, help="strangers per scene")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.json:
        partial = args.json.with_name(f".{args.json.name}.partial")
        partial.write_text(text + "\n")
        os.replace(partial, args.json)
    print(text)


if __name__ == "__main__":
    main()
