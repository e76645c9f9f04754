"""What a person's name may be: the one rule the CLI, the HTTP service, enrolment and import share.

A name is text of at most ``MAX_NAME_LENGTH`` characters once trimmed, printable (no control, format,
private-use or unassigned characters, no lone surrogates, no line breaks; the zero-width (non-)joiners
that some scripts and emoji need are allowed), without ``/`` (names travel in URL paths such as
``DELETE /v1/people/{name}``), and not a reserved word in any letter case (``unknown`` is what
identification says of a face nobody matches).
"""

from __future__ import annotations

from ...errors import BadInputError

UNKNOWN = "unknown"
RESERVED = (UNKNOWN,)
MAX_NAME_LENGTH = 128
_JOINERS = "\u200c\u200d"  # ZWNJ, ZWJ: part of Persian, Indic and emoji spellings


def _first_bad_character(name: str) -> str | None:
    for char in name:
        if char == "/" or not (char.isprintable() or char in _JOINERS):
            return char
    return None


def check_name(name, what: str = "person name") -> str:
    """``name`` trimmed, or BadInputError saying which rule it breaks (``what`` names the input in the message)."""
    if not isinstance(name, str):
        raise BadInputError(f"{what} {name!r}: expected text, got {type(name).__name__}")
    trimmed = name.strip()
    shown = ascii(trimmed) if len(trimmed) <= 40 else ascii(trimmed[:40]) + "..."
    if not trimmed:
        raise BadInputError(f"{what} {name!r}: expected a non-empty name")
    if len(trimmed) > MAX_NAME_LENGTH:
        raise BadInputError(f"{what} {shown}: {len(trimmed)} characters, at most {MAX_NAME_LENGTH}")
    bad = _first_bad_character(trimmed)
    if bad is not None:
        kind = "'/'" if bad == "/" else f"the unprintable character U+{ord(bad):04X}"
        raise BadInputError(f"{what} {shown}: contains {kind}; expected printable text without '/'")
    if trimmed.casefold() in RESERVED:
        raise BadInputError(f"{what} {shown}: {trimmed.casefold()!r} is reserved (in any letter case); "
                            f"expected a non-empty name other than {UNKNOWN!r}")
    return trimmed
