"""Build recipes, one module per model kind: how `facestyle build` turns source weights into an artifact.

``all_recipes()`` gathers every kind's recipes from the export kinds table (``facestyle.export.kinds``):
``{model name: recipe}``, e.g. ``face-embed``, ``landmarks-5``, ``style-starry_night``.
"""

from __future__ import annotations


def all_recipes() -> dict:
    from ..kinds import EXPORT_KINDS

    recipes: dict = {}
    for kind in EXPORT_KINDS.values():
        recipes.update(kind.model_recipes())
    return recipes
