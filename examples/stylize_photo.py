"""A photo in a painting's style, at the photo's own size (large photos go through in feathered tiles).

Shows ``list_styles`` and ``Stylizer``. Run it after ``facestyle build`` (which builds the shipped styles):

    python examples/stylize_photo.py photo.jpg starry.jpg --style starry_night [--strength 0.8]

Prints the styles built, then the output's path and size.
"""

from __future__ import annotations

import argparse

from facestyle.images import load_image, save_image
from facestyle.style.stylizer import Stylizer, list_styles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", help="the photo")
    parser.add_argument("out", help="where to write the stylised photo (.jpg or .png)")
    parser.add_argument("--style", default="starry_night", help="a built style (default: starry_night)")
    parser.add_argument("--strength", type=float, default=1.0, help="0..1: how much of the style (default: 1)")
    parser.add_argument("--engines", default="engines", help="the folder `facestyle build` wrote (default: engines)")
    args = parser.parse_args()
    print("styles built:", ", ".join(s["name"] for s in list_styles(args.engines)))
    stylizer = Stylizer.from_engines(args.style, args.engines)
    out = stylizer.stylize(load_image(args.photo), strength=args.strength)
    save_image(out, args.out)
    print(f"{args.out}: {out.shape[1]}x{out.shape[0]} in the style {args.style}")


if __name__ == "__main__":
    main()
