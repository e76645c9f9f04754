"""The settings of the training commands (``train-embedding``, ``train-style``, ``style-optimize``), one
dataclass each: every field is one option, its default, help, choices and bounds written once here. The CLI
makes its flags from these fields (``facestyle.options``) and checks them as the config is made, before
torch or any model loads; the trainers in ``facestyle.export`` take the same dataclasses.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import BadInputError
from .options import check_options, nested, option

# -- face embeddings ------------------------------------------------------------------------------
ARCHS = ("compact", "dlib")  # the keys of facestyle.export.embedding.archs.ARCHS
INITS = ("scratch", "dlib")
MINERS = ("batch-hard", "semi-hard", "batch-all")  # the keys of facestyle.export.embedding.triplet.MINERS
HEAD_FORMS = ("abs", "chi2", "none")
# Adam's learning rate by starting point. From dlib's weights a step of 1e-4 wrecks the pretrained embedding
# within 20 steps (on 10 LFW people it maps every face near one point); 1e-5 keeps it and still moves it
# (README, "Training face embeddings").
DEFAULT_LR = {"scratch": 1e-3, "dlib": 1e-5}
# Settings that may change when a run is resumed: how long it runs and what happens at its end.
RESUMABLE_CHANGES = ("epochs", "max_steps", "eval_every", "checkpoint_every", "head", "force")


@dataclass(frozen=True)
class EmbeddingTrainConfig:
    arch: str = option("compact", "network: dlib's ResNet or a compact CNN for a CPU", choices=ARCHS)
    init: str = option("scratch", "starting weights: dlib's (--arch dlib only) or random", choices=INITS)
    mining: str = option("batch-hard", "online triplet mining in each PK batch", choices=MINERS)
    margin: float = option(0.2, "the triplet loss's alpha", above=0)
    normalize: bool = option(True, "raw embeddings (default: L2-normalised)")
    identities_per_batch: int = option(16, "P, identities per batch", at_least=2)
    images_per_identity: int = option(4, "K, photos per identity in a batch", at_least=2)
    lr: float | None = option(None, "Adam's learning rate (default "
                              + ", ".join(f"{v:g} from {k}" for k, v in DEFAULT_LR.items()) + ")", type=float, above=0)
    epochs: int = option(10, "passes over the training chips", at_least=1, exclusive="length")
    max_steps: int | None = option(None, "training steps, in place of --epochs", type=int, at_least=1,
                                   exclusive="length")
    eval_every: int | None = option(None, "steps between held-out evaluations (default: one epoch)", type=int,
                                    at_least=1)
    checkpoint_every: int = option(100, "steps between checkpoints", at_least=1)
    head: str = option("abs", "similarity head fitted at the end", choices=HEAD_FORMS)
    force: bool = option(False, "export even a model that does worse on the held-out pairs than where it started")
    seed: int = option(0, "seed of the batches, the held-out split and the weights")

    def __post_init__(self):
        check_options(self)
        if self.init == "dlib" and self.arch != "dlib":
            raise BadInputError(f"--arch {self.arch} --init dlib: dlib's weights fit --arch dlib only; "
                                "use --init scratch")

    @property
    def batch(self) -> int:
        return self.identities_per_batch * self.images_per_identity

    def resolved(self, train_size: int) -> EmbeddingTrainConfig:
        """This config with its per-run defaults filled in: the learning rate for its start, the steps and the
        evaluation interval from the number of training chips."""
        per_epoch = max(1, -(-train_size // self.batch))
        return replace(self, lr=self.lr if self.lr is not None else DEFAULT_LR[self.init],
                       max_steps=self.max_steps if self.max_steps is not None else self.epochs * per_epoch,
                       eval_every=self.eval_every or per_epoch)


# -- style --------------------------------------------------------------------------------------
VGG_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # facestyle.export.style.vgg.TAPS
VARIANTS = ("edge2", "edge", "standard")  # the keys of facestyle.export.style.transformer.SIZES
GRAM_MODES = ("sum", "per-pixel")
STYLE_CROPS = ("full", "square")


@dataclass(frozen=True)
class StyleCostWeights:
    content_layer: str = option("relu2_2", "the VGG16 layer the content cost compares (deeper leaves the finer "
                                "textures to the style)", choices=VGG_TAPS)
    style_layers: dict = field(default_factory=lambda: {"relu1_2": 0.25, "relu2_2": 0.25, "relu3_3": 0.25, "relu4_3": 0.25})
    alpha: float = 1.0  # content
    beta: float = 1e5  # style (its Gram terms are normalised by (2 C H W)^2, hence the scale)
    tv: float = 1e-2

    def __post_init__(self):
        check_options(self)


@dataclass(frozen=True)
class TrainConfig:
    """``train-style``: one feed-forward network for one style."""

    variant: str = option("edge2", "edge2: the camera-speed net without the grid pattern (what ships); edge: the "
                          "older one (a period-2 grid); standard: Johnson et al.'s 1.7M-parameter net", choices=VARIANTS)
    size: int = option(256, "training crop side", at_least=32)
    steps: int = option(2000, "training steps", at_least=1)
    batch: int = option(4, "photos per step", at_least=1)
    lr: float = option(1e-3, "Adam's learning rate", above=0)
    style_size: int | None = option(None, "the painting's longer side for its Gram matrices (default: --size); "
                                    "larger gives larger brush strokes", type=int, at_least=16)
    content_weight: float = option(1.0, "weight of the content cost", at_least=0)
    style_weight: float = option(1e5, "weight of the style cost", at_least=0)
    tv_weight: float = option(1e-2, "weight of the total variation", at_least=0)
    checkpoint_every: int = option(100, "steps between checkpoints", at_least=1)
    sample_every: int = option(200, "steps between samples", at_least=1)
    seed: int = option(0, "seed of the batches and the weights")
    init_from: str | None = option(None, "start from these weights (checkpoint.pt or .safetensors), e.g. a "
                                   "content-only run (--style-weight 0): the net then starts out reproducing the photo",
                                   type=str)
    # "per-pixel": the painting's Gram matrices are rescaled to the crop's number of positions, so --style-size
    # sets the brush-stroke scale only; "sum" (the shipped edge nets): Gram sums as they are, so a painting with
    # more pixels than the crop also weighs more (2-4.5x at --style-size 256-384 against 160 px crops).
    gram: str = option("sum", "per-pixel: the painting's Gram matrices scaled to the crop's size, so --style-size "
                       "sets the stroke scale without changing the style weight; sum: as the shipped nets",
                       choices=GRAM_MODES)
    # "square": the painting's centre square, resized to style_size (the target benchmarks/style_quality.py
    # measures against); "full": the whole painting with its longer side at style_size.
    style_crop: str = option("full", "square: the painting's centre square at --style-size (what "
                             "benchmarks/style_quality.py compares with); full: the whole painting", choices=STYLE_CROPS)
    # > 0: also penalise the difference between the net's output of a shifted crop and its shifted output (shifts
    # that are not multiples of the net's stride), which is what a grid pattern is; see shift_consistency.
    shift_weight: float = option(0.0, "weight of the shift-consistency term: output of a shifted crop vs the "
                                 "shifted output (removes a learned grid pattern)", at_least=0)
    # > 0: keep an exponential moving average of the weights with this decay per step (0.99: about the last 100
    # steps); samples, the checkpoint's shipped weights and the exported safetensors are the average, which
    # smooths the step-to-step swings of a small-batch run (docs/style-experiments.md, section F).
    ema: float = option(0.0, "decay of a moving average of the weights, which samples and the exported weights "
                        "use (0.99: about the last 100 steps; 0: off)", at_least=0, below=1)
    weights: StyleCostWeights = nested(StyleCostWeights)

    def __post_init__(self):
        check_options(self)


@dataclass(frozen=True)
class StyleOptimizeConfig:
    """``style-optimize``: the slow method, one image optimised on the style cost."""

    steps: int = option(300, "optimisation steps", at_least=1)
    size: int = option(384, "longest side of the result", at_least=16)
    init: str = option("content", "start from the photo or from noise", choices=("content", "noise"))

    def __post_init__(self):
        check_options(self)
