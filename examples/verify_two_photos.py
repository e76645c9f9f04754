"""Are the faces of two photos the same person? The largest face of each photo is compared.

Shows ``FaceAnalyzer.verify``: detection, landmarks, alignment and the 128-d embedding, with the threshold
from the model's manifest. Run it after ``facestyle build`` (which writes ``engines/``):

    python examples/verify_two_photos.py a.jpg b.jpg [--engines engines]

Prints ``same person`` or ``different people`` with the distance and the threshold.
"""

from __future__ import annotations

import argparse

from facestyle.face.analyzer import FaceAnalyzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="a photo")
    parser.add_argument("b", help="another photo")
    parser.add_argument("--engines", default="engines", help="the folder `facestyle build` wrote (default: engines)")
    args = parser.parse_args()
    with FaceAnalyzer.from_engines(args.engines) as analyzer:
        result = analyzer.verify(args.a, args.b)
    verdict = "same person" if result.same else "different people"
    print(f"{verdict}: distance {result.distance:.3f}, threshold {result.threshold:.3f}")


if __name__ == "__main__":
    main()
