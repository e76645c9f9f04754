"""Faces frame by frame from a video file or a camera, named from a gallery when one is given.

Shows ``facestyle.video.open_source`` (OpenCV, the ``video`` extra) feeding ``FaceAnalyzer.faces``, and a
gallery search per face. Run it after ``facestyle build``:

    python examples/faces_in_a_video.py door.mp4 [--gallery people.db] [--every 5] [--max-frames 100]
    python examples/faces_in_a_video.py 0          # the first camera; Ctrl-C stops it

Prints one line per frame looked at: its index, its time and the faces found (names with a gallery).
"""

from __future__ import annotations

import argparse

import numpy as np

from facestyle.face.analyzer import FaceAnalyzer
from facestyle.face.gallery import Gallery
from facestyle.video import open_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a video file, or a camera number such as 0")
    parser.add_argument("--gallery", help="a gallery file to name the faces from (facestyle enroll makes one)")
    parser.add_argument("--every", type=int, default=1, help="look at every Nth frame (default: every one)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames looked at")
    parser.add_argument("--engines", default="engines", help="the folder `facestyle build` wrote (default: engines)")
    args = parser.parse_args()
    with FaceAnalyzer.from_engines(args.engines) as analyzer:
        gallery = Gallery.open(args.gallery, analyzer.embedder.identity, create=False, write=False) \
            if args.gallery else None
        try:
            watch(analyzer, gallery, args)
        finally:
            if gallery is not None:
                gallery.close()


def watch(analyzer: FaceAnalyzer, gallery: Gallery | None, args: argparse.Namespace) -> None:
    looked_at = 0
    with open_source(args.source) as frames:
        for frame in frames:
            if frame.index % args.every:
                continue
            faces = analyzer.faces(frame.pixels)
            names = names_of(gallery, [face.embedding for face in faces], analyzer.threshold)
            print(f"frame {frame.index} at {frame.time_s:.2f} s: {len(faces)} face(s) {names}")
            looked_at += 1
            if args.max_frames is not None and looked_at >= args.max_frames:
                break


def names_of(gallery: Gallery | None, embeddings: list[np.ndarray], threshold: float) -> list[str]:
    """Who each face is (or "unknown"); without a gallery, just "face"."""
    if gallery is None or not embeddings:
        return ["face"] * len(embeddings)
    return [found.identity for found in gallery.identify(np.stack(embeddings), threshold, top_k=1)]


if __name__ == "__main__":
    main()
