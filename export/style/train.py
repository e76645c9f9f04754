"""Training a feed-forward style network (Johnson et al.) with the same cost as the slow method.

One run trains one style. Everything a run needs to continue lives in its output folder:
``checkpoint.pt`` (tensors only, read back with ``weights_only=True``), ``loss.jsonl`` (one JSON line
per logged step), ``samples/`` (a stylised validation photo every N steps) and, at the end,
``<style>.safetensors`` (fp16) and ``<style>.card.json``, ready to ship in export/style/weights/.
Batches are a pure function of (seed, step), so a resumed run sees exactly the photos an uninterrupted one would have.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from facestyle.errors import BadInputError
from facestyle.images import load_image
from facestyle.manifest import atomic_write_bytes
from facestyle.train_config import TrainConfig

if TYPE_CHECKING:  # torch is imported where training runs, so the module itself loads without it
    import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


SHIFT_MARGIN = 16  # pixels of each border left out of the shift term: padding differs there by construction


def content_files(content_dir: str | Path) -> list[Path]:
    folder = Path(content_dir)
    if not folder.is_dir():
        raise BadInputError(f"content dir {folder}: not a folder of photos")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BadInputError(f"content dir {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return files


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of 60-100% of the shorter side, resized to ``size``, flipped half the time."""
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.6, 1.0))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(image[top : top + side, left : left + side]).resize((size, size), Image.BICUBIC)
    out = np.asarray(crop)
    return out[:, ::-1] if rng.random() < 0.5 else out


def batch_for_step(files: list[Path], config: TrainConfig, step: int) -> np.ndarray:
    rng = np.random.default_rng([config.seed, step])
    picks = rng.integers(0, len(files), config.batch)
    crops = [random_crop(load_image(files[i]), config.size, rng) for i in picks]
    return np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32)


def shifts_for_step(config: TrainConfig, step: int, multiple: int) -> tuple[int, int]:
    """The (dy, dx) of the shift term at this step: both in 1..multiple-1, a pure function of (seed, step)."""
    dy, dx = np.random.default_rng([config.seed, step, 1]).integers(1, multiple, 2)
    return int(dy), int(dx)


def style_target(image: np.ndarray, config: TrainConfig) -> np.ndarray:
    side = config.style_size or config.size
    if config.style_crop == "square":
        h, w = image.shape[:2]
        s = min(h, w)
        image = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return resized(image, side)


def resized(image: np.ndarray, longer_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = longer_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


class StyleTrainer:
    """Trains ``StyleTransformer(SIZES[config.variant])`` on one style; ``run()`` resumes where it stopped."""

    def __init__(self, vgg, style_image: np.ndarray, files: list[Path], out_dir: str | Path, config: TrainConfig,
                 sample_image: np.ndarray | None = None, style_name: str = "style"):
        import torch

        from .transformer import SIZES, StyleTransformer

        if config.shift_weight and config.size <= SIZES[config.variant].multiple + 2 * SHIFT_MARGIN:
            raise BadInputError(f"--size {config.size}: the shift term needs crops larger than "
                                f"{SIZES[config.variant].multiple + 2 * SHIFT_MARGIN} px")
        self.torch, self.vgg, self.files, self.config = torch, vgg, files, config
        self.out = Path(out_dir)
        self.style_name = style_name
        torch.manual_seed(config.seed)
        self.net = StyleTransformer(SIZES[config.variant])
        self.optimiser = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        style = style_target(style_image, config)
        with torch.no_grad():
            features = vgg(torch.from_numpy(style.transpose(2, 0, 1)[None].astype(np.float32)))
        self.style_features = {k: v * self._gram_scale(k, v) for k, v in features.items() if k in config.weights.style_layers}
        if config.init_from:
            self.net.load_state_dict(initial_weights(Path(config.init_from)))
        self.average = self._frozen_copy() if config.ema else None
        self.sample_image = sample_image
        self.step = 0
        self.seconds = 0.0

    def _frozen_copy(self):
        import copy

        average = copy.deepcopy(self.net)
        average.requires_grad_(False)
        return average

    @property
    def shipped_net(self):
        """The weights a run ships: the moving average when there is one, else the trained net itself."""
        return self.average if self.average is not None else self.net

    def _update_average(self) -> None:
        if self.average is None:
            return
        current = self.net.state_dict()
        with self.torch.no_grad():
            for name, value in self.average.state_dict().items():
                if value.is_floating_point():
                    value.lerp_(current[name], 1.0 - self.config.ema)

    def _gram_scale(self, layer: str, style_feature) -> float:
        """The factor on the painting's features that brings its Gram matrix to the crop's number of positions."""
        if self.config.gram == "sum":
            return 1.0
        from .vgg import TAPS

        side = self.config.size // 2 ** TAPS.index(layer)  # each VGG block halves the crop
        return float(np.sqrt(side * side / (style_feature.shape[-2] * style_feature.shape[-1])))

    # -- persistence -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.out / "loss.jsonl"

    def save_checkpoint(self) -> None:
        import io

        buffer = io.BytesIO()
        state = {"step": self.step, "seconds": self.seconds, "model": self.net.state_dict(),
                 "optimiser": self.optimiser.state_dict(), "config": json.dumps(asdict(self.config))}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        self.torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def resume(self) -> int:
        """Loads ``checkpoint.pt`` if there is one; returns the step it continues from."""
        if not self.checkpoint_path.exists():
            return 0
        state = self.torch.load(self.checkpoint_path, weights_only=True)
        saved = {**json.loads(json.dumps(asdict(TrainConfig()))), **json.loads(state["config"])}  # newer keys: defaults
        mine = json.loads(json.dumps(asdict(self.config)))
        differing = sorted(k for k in mine if k not in ("steps", "checkpoint_every", "sample_every") and mine[k] != saved.get(k))
        if differing:
            raise BadInputError(f"checkpoint {self.checkpoint_path} was trained with other settings ({', '.join(differing)}); "
                                "use a new --out folder or the same settings")
        self.net.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self._truncate_log(self.step)
        return self.step

    def _truncate_log(self, step: int) -> None:
        """Drops log lines written after the checkpoint, so that the log of a resumed run has no repeats."""
        if not self.log_path.exists():
            return
        lines = [line for line in self.log_path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        atomic_write_bytes(self.log_path, "".join(line + "\n" for line in lines).encode())

    # -- training ----------------------------------------------------------------------------------
    def losses(self, content: torch.Tensor) -> dict:
        from .costs import content_cost, style_cost, total_variation

        w, c = self.config.weights, self.config
        generated = self.net(content)
        with self.torch.no_grad():
            target = self.vgg(content)[w.content_layer]
        features = self.vgg(generated)
        jc = content_cost(target, features[w.content_layer])
        js = style_cost(self.style_features, features, w.style_layers)
        tv = total_variation(generated)
        total = c.content_weight * jc + c.style_weight * js + c.tv_weight * tv
        terms = {"total": total, "content": jc, "style": js, "tv": tv}
        if c.shift_weight:
            terms["shift"] = shift_consistency(self.net, content, generated, shifts_for_step(c, self.step, self.net.size.multiple))
            terms["total"] = total + c.shift_weight * terms["shift"]
        return terms

    def train_step(self) -> dict:
        self.net.train()
        batch = self.torch.from_numpy(batch_for_step(self.files, self.config, self.step))
        self.optimiser.zero_grad()
        terms = self.losses(batch)
        terms["total"].backward()
        self.optimiser.step()
        self._update_average()
        self.step += 1
        return {"step": self.step, **{k: float(v.detach()) for k, v in terms.items()}}

    def stylize(self, image: np.ndarray) -> np.ndarray:
        net = self.shipped_net
        net.eval()
        with self.torch.no_grad():
            out = net(self.torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32)))
        return out[0].permute(1, 2, 0).round().byte().numpy()

    def save_sample(self) -> None:
        if self.sample_image is None:
            return
        path = self.out / "samples" / f"step-{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.stylize(self.sample_image)).save(path)

    def run(self, progress=None) -> dict:
        """Trains up to ``config.steps``; checkpoints, logs and samples on the way. Returns the last log entry."""
        self.out.mkdir(parents=True, exist_ok=True)
        entry: dict = {}
        with open(self.log_path, "a") as log:
            while self.step < self.config.steps:
                started = time.perf_counter()
                entry = self.train_step()
                self.seconds += time.perf_counter() - started
                entry["seconds"] = round(self.seconds, 2)
                log.write(json.dumps(entry) + "\n")
                log.flush()
                if progress:
                    progress.update(1, f"style {entry['style']:.3g} content {entry['content']:.3g}")
                if self.step % self.config.checkpoint_every == 0 or self.step == self.config.steps:
                    self.save_checkpoint()
                if self.step % self.config.sample_every == 0 or self.step == self.config.steps:
                    self.save_sample()
        return entry

    # -- the result ------------------------------------------------------------------------------
    def export_weights(self, source: str, device: str) -> tuple[Path, Path]:
        """Writes ``<style>.safetensors`` (fp16) and ``<style>.card.json`` describing how they were made."""
        from safetensors.torch import save

        tensors = {k: v.detach().half().contiguous() for k, v in self.shipped_net.state_dict().items()}
        weights = self.out / f"{self.style_name}.safetensors"
        atomic_write_bytes(weights, save(tensors, metadata={"variant": self.config.variant, "style": self.style_name}))
        tail = [json.loads(line) for line in self.log_path.read_text().splitlines()[-50:]]
        card = {
            "style": self.style_name,
            "variant": self.config.variant,
            "style_image": source,
            "content": f"{len(self.files)} photos ({self.files[0].parent.name})",
            "steps": self.step,
            "batch": self.config.batch,
            "resolution": self.config.size,
            "training_seconds": round(self.seconds),
            "final_losses": {k: float(np.mean([t[k] for t in tail]))
                             for k in ("total", "content", "style", "tv", "shift") if k in tail[-1]},
            "device": device,
            "config": asdict(self.config),
            "trained_by": "facestyle train-style",
        }
        card_path = self.out / f"{self.style_name}.card.json"
        atomic_write_bytes(card_path, (json.dumps(card, indent=2) + "\n").encode())
        return weights, card_path


def shift_consistency(net, content: torch.Tensor, generated: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Sum of squared differences per image between net(photo shifted by (dy, dx)) and net(photo) shifted alike,
    inside a margin; averaged over the batch. A strided net is only equivariant to shifts by multiples of its
    stride; what it does differently at the other phases is the grid pattern, so this is zero without one."""
    dy, dx = shift
    m, margin = net.size.multiple, SHIFT_MARGIN
    h, w = content.shape[-2] - m, content.shape[-1] - m  # still multiples of m: the net pads nothing
    shifted = net(content[..., dy : dy + h, dx : dx + w])
    diff = (shifted - generated[..., dy : dy + h, dx : dx + w])[..., margin:-margin, margin:-margin]
    return (diff**2).flatten(1).sum(1).mean()


def initial_weights(path: Path) -> dict:
    """Model weights from a ``checkpoint.pt`` (tensors only; its moving average where the run kept one: the weights
    it would ship) or a ``.safetensors`` file, as float32."""
    import torch

    if not path.is_file():
        raise BadInputError(f"--init-from {path}: no such checkpoint or safetensors file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {k: v.float() for k, v in load_file(str(path)).items()}
    state = torch.load(path, weights_only=True)
    return state.get("average", state["model"])


def device_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"CPU ({cpu}), {torch.get_num_threads()} torch threads, torch {torch.__version__}"
