"""Talk to ``facestyle serve`` over HTTP with nothing but the standard library: verify two photos, enrol a
person and name the faces of a photo.

Shows the service's multipart uploads and JSON answers (``POST /v1/verify``, ``/v1/enroll``, ``/v1/identify``),
for apps that are not written in Python or that should not load the models themselves. Start a server, then:

    facestyle serve --engines engines --gallery people.db --port 8000 [--token-file token.txt]
    python examples/service_client.py http://127.0.0.1:8000 a.jpg b.jpg --enrol ada ada.jpg --identify door.jpg
    # add --token-file token.txt where the server was started with one

Prints the verdict, the enrolment and one line per face identified.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
import uuid
from pathlib import Path


def post(url: str, fields: list[tuple[str, str | Path]], token: str | None = None) -> dict:
    """A multipart/form-data POST: text fields as given, ``Path`` values as file uploads; the JSON answer."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if isinstance(value, Path):
            head += f'; filename="{value.name}"\r\nContent-Type: application/octet-stream'
            content = value.read_bytes()
        else:
            content = value.encode()
        body += f"{head}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="the server's address, e.g. http://127.0.0.1:8000")
    parser.add_argument("a", type=Path, help="a photo")
    parser.add_argument("b", type=Path, help="another photo")
    parser.add_argument("--enrol", nargs=2, metavar=("NAME", "PHOTO"), help="enrol NAME from PHOTO")
    parser.add_argument("--identify", type=Path, metavar="PHOTO", help="name every face of PHOTO")
    parser.add_argument("--token-file", type=Path, help="the server's --token-file")
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else None
    server = args.server.rstrip("/")
    verdict = post(f"{server}/v1/verify", [("a", args.a), ("b", args.b)], token)
    print(f"verify: {'same person' if verdict['same'] else 'different people'} "
          f"(distance {verdict['distance']:.3f}, threshold {verdict['threshold']:.3f})")
    if args.enrol:
        name, photo = args.enrol
        enrolled = post(f"{server}/v1/enroll", [("name", name), ("images", Path(photo))], token)
        print(f"enrol: {json.dumps(enrolled)}")
    if args.identify:
        found = post(f"{server}/v1/identify?top_k=1", [("image", args.identify)], token)
        for face in found["faces"]:
            print(f"identify: face at {face['box']} is {face['identity']}")


if __name__ == "__main__":
    main()
