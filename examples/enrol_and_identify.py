"""One-shot identification: enrol people from one photo each, then name every face of other photos.

Shows ``Gallery.open`` (one SQLite file, tied to the embedding model that filled it), ``enroll_photos`` and
``identify_photo``. Run it after ``facestyle build``:

    python examples/enrol_and_identify.py people.db --enrol ada ada.jpg --enrol kit kit.jpg door.jpg group.jpg

Prints one line per face: the photo, the face's box and who it is (or ``unknown``) with the distance.
"""

from __future__ import annotations

import argparse

from facestyle.face.analyzer import FaceAnalyzer
from facestyle.face.gallery import Gallery, enroll_photos, identify_photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gallery", help="a SQLite file (made if absent)")
    parser.add_argument("photos", nargs="+", help="photos whose faces to name")
    parser.add_argument("--enrol", nargs=2, action="append", default=[], metavar=("NAME", "PHOTO"),
                        help="enrol NAME from PHOTO first (repeatable)")
    parser.add_argument("--engines", default="engines", help="the folder `facestyle build` wrote (default: engines)")
    args = parser.parse_args()
    with FaceAnalyzer.from_engines(args.engines) as analyzer:
        gallery = Gallery.open(args.gallery, analyzer.embedder.identity)
        try:
            for name, photo in args.enrol:
                enrolment = enroll_photos(gallery, analyzer, name, [photo])
                print(f"{photo}: {', '.join(o.status for o in enrolment)} as {name}")
            for photo in args.photos:
                for face in identify_photo(gallery, analyzer, photo, top_k=1).faces:
                    nearest = f" (distance {face.matches[0].distance:.3f})" if face.matches else ""
                    print(f"{photo}: face at {face.box} is {face.identity}{nearest}")
        finally:
            gallery.close()


if __name__ == "__main__":
    main()
