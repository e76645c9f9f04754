"""Training data for embeddings: a folder per identity (photos, or aligned chips with ``aligned``), turned into
aligned 150x150 chips by facestyle's own pipeline (the LFW subject policy), cached by photo hash; PK batches as
a pure function of (seed, step), so a resumed run sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from facestyle.errors import BadInputError
from facestyle.images import encode_image, load_image
from facestyle.manifest import atomic_write_bytes
from facestyle.progress import Progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CHIP = 150


@dataclass
class FaceSet:
    chips: np.ndarray  # (N, 150, 150, 3) uint8
    labels: np.ndarray  # (N,) int: index into names
    names: list[str]
    files: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def groups(self) -> dict[int, np.ndarray]:
        """label -> the indices of its chips (computed once: every batch draws from it)."""
        order = np.argsort(self.labels, kind="stable")
        labels, starts = np.unique(self.labels[order], return_index=True)
        return dict(zip(labels.tolist(), np.split(order, starts[1:])))


class ChipCache:
    """``<dir>/<sha256 of the photo>.png`` (the subject's chip) or ``.none`` (no face was found)."""

    def __init__(self, folder: Path, analyzer_factory):
        self.folder, self._factory, self._analyzer = Path(folder), analyzer_factory, None
        self.folder.mkdir(parents=True, exist_ok=True)

    def chip(self, path: Path) -> tuple[bool, np.ndarray]:
        """(a face was detected, the subject's chip; the centred fallback chip when none was)."""
        from facestyle.face.evaluation import subject_chip

        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        for found, suffix in ((True, ".png"), (False, ".none.png")):
            cached = self.folder / f"{sha}{suffix}"
            if cached.exists():
                return found, load_image(cached)
        if self._analyzer is None:
            self._analyzer = self._factory()
        found, chip = subject_chip(self._analyzer, load_image(data))
        atomic_write_bytes(self.folder / f"{sha}{'.png' if found else '.none.png'}", encode_image(chip))
        return found, chip


def identity_names(file: Path) -> set[str]:
    """The identities a pairs file (LFW format) or a list (one name a line) mentions."""
    try:
        lines = Path(file).read_text().splitlines()
    except OSError as exc:
        raise BadInputError(f"--identities {file}: {exc.strerror}") from None
    return {f for line in lines for f in line.split() if not f.isdigit()}


def identity_folders(data_dir: Path, only: set[str] | None = None) -> list[tuple[str, list[Path]]]:
    root = Path(data_dir)
    if not root.is_dir():
        raise BadInputError(f"--data {root}: not a folder (expected DIR/<identity>/<photos>)")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (only is None or p.name in only)):
        files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            out.append((folder.name, files))
    if len([1 for _, files in out if len(files) >= 2]) < 2:
        raise BadInputError(f"--data {root}: needs at least 2 identities with 2 or more photos each")
    return out


def load_face_set(data_dir: Path, cache: ChipCache | None, only: set[str] | None = None,
                  progress: bool = True) -> FaceSet:
    """Every photo's chip (``cache`` None: the files are aligned chips already); photos without a face are left out."""
    folders = identity_folders(data_dir, only)
    chips, labels, names, files = [], [], [], []
    with Progress(sum(len(f) for _, f in folders), "aligning", enabled=progress) as bar:
        for name, paths in folders:
            for path in paths:
                found, chip = (True, load_image(path)) if cache is None else cache.chip(path)
                bar.update()
                if not found:
                    continue
                if chip.shape != (CHIP, CHIP, 3):
                    raise BadInputError(f"{path}: an aligned chip must be {CHIP}x{CHIP} RGB, got {chip.shape[1]}x{chip.shape[0]}")
                chips.append(chip)
                labels.append(len(names))
                files.append(str(path))
            names.append(name)
    return FaceSet(np.stack(chips), np.asarray(labels), names, files)


def augment(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random flip, a shift of up to 6 px (reflected border) and +-15% brightness and contrast."""
    if rng.random() < 0.5:
        chip = chip[:, ::-1]
    dy, dx = rng.integers(-6, 7, 2)
    padded = np.pad(chip, ((6, 6), (6, 6), (0, 0)), mode="reflect")
    chip = padded[6 + dy:6 + dy + CHIP, 6 + dx:6 + dx + CHIP].astype(np.float32)
    mean = chip.mean()
    chip = (chip - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.85, 1.15)
    return np.clip(chip, 0, 255).astype(np.uint8)


def pk_batch(faces: FaceSet, p: int, k: int, seed: int, step: int, augmented: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """P identities (with 2+ chips) x K chips each, drawn from (seed, step) alone: (chips (P*K, 150, 150, 3), labels)."""
    rng = np.random.default_rng([seed, step])
    by_label = faces.groups
    eligible = sorted(label for label, idx in by_label.items() if len(idx) >= 2)
    chosen = rng.choice(eligible, size=min(p, len(eligible)), replace=False)
    picks = [rng.choice(by_label[label], size=k, replace=len(by_label[label]) < k) for label in chosen]
    index = np.concatenate(picks)
    chips = np.stack([augment(faces.chips[i], rng) if augmented else faces.chips[i] for i in index])
    return chips, faces.labels[index]


def training_pairs(faces: FaceSet, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``count`` distinct same-identity and ``count`` distinct different-identity index pairs: (a, b, same),
    same pairs first. Fewer where the faces do not hold that many: no pair is repeated."""
    rng = np.random.default_rng([seed, 1_000_003])
    same = _distinct_pairs(_same_pairs(faces), count, rng)
    different = _different_pairs(faces, count, rng)
    pairs = np.concatenate([same, different]).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1], np.r_[np.ones(len(same), bool), np.zeros(len(different), bool)]


def _same_pairs(faces: FaceSet) -> np.ndarray:
    """Every (i, j), i < j, of chips of one identity."""
    groups = [g for g in faces.groups.values() if len(g) >= 2]
    return np.concatenate([np.stack([g[i], g[j]], 1) for g in groups for i, j in [np.triu_indices(len(g), 1)]])


def _distinct_pairs(pairs: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return pairs[np.sort(rng.choice(len(pairs), min(count, len(pairs)), replace=False))]


def _different_pairs(faces: FaceSet, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` distinct (i, j), i < j, of chips of two identities: drawn at random, or all of them where
    there are few."""
    sizes = np.bincount(faces.labels)
    total = (len(faces) ** 2 - int((sizes**2).sum())) // 2
    if total <= 4 * count:
        i, j = np.triu_indices(len(faces), 1)
        keep = faces.labels[i] != faces.labels[j]
        return _distinct_pairs(np.stack([i[keep], j[keep]], 1), count, rng)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < count:
        a, b = sorted(rng.integers(0, len(faces), 2).tolist())
        if faces.labels[a] != faces.labels[b]:
            chosen.add((a, b))
    return np.array(sorted(chosen))
