"""Our own cases, per task. A kind with a ``bench_task`` in the kinds table is timed by the one loop
:func:`kind_cases` (each built model x precision x backend, through the kind's runtime class), with
what differs per task (the calls timed on the opened runtime) in :data:`KIND_CASES`; ``e2e`` is the
whole path an app runs, across kinds. :data:`CASE_BUILDERS` maps every task to its case generator.

- ``embed``: aligned uint8 chips -> embeddings (``FaceEmbedder.embed``), at each batch asked for;
- ``detect``: one decoded photo at a fixed size -> boxes (``FaceDetector.detect``, upsample 0);
- ``style``: a preprocessed (1, 3, S, S) tensor -> the network's output (``backend.infer``);
- ``e2e-identify`` / ``e2e-stylize``: JPEG bytes in -> identities / JPEG bytes out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..kinds import KINDS, ModelKind
from .context import BenchContext, backends_for, built_precisions, closing_runtime, encode_jpeg
from .flops import network_flops
from .harness import E2E_TASK, UNAVAILABLE, BenchConfig, Case, Skipped, boundary_for
from .peers import PEERS

CHIP_SIDE = 150  # the embedding's aligned chip, dlib's size
Call = tuple[int, int, Callable[[], object]]  # (items per call, pixels, the call)


@dataclass(frozen=True)
class KindTask:
    """How a kind's opened runtime is timed: the options it is opened with, and the calls to time on it."""

    calls: Callable[[BenchContext, object], Iterator[Call]]
    open_options: Callable[[BenchConfig], dict] = lambda config: {}
    # The network's input shape for a call of (items, pixels): its FLOPs give the row's achieved GFLOP/s.
    network_input: Callable[[BenchContext, object, int, int], tuple[int, ...]] | None = None


def embed_calls(ctx: BenchContext, embedder) -> Iterator[Call]:
    for batch in ctx.config.embed_batches:
        yield batch, CHIP_SIDE, partial(embedder.embed, ctx.chips(batch))


def detect_calls(ctx: BenchContext, detector) -> Iterator[Call]:
    yield 1, ctx.config.detect_side, partial(detector.detect, ctx.detect_photo(), 0)


def style_calls(ctx: BenchContext, stylizer) -> Iterator[Call]:
    contract = stylizer.contract
    for size in ctx.config.style_sizes:
        feed = {contract.input_name: ctx.style_tensor(size, contract.input_range)}
        yield 1, size, partial(stylizer.backend.infer, feed)


def detect_network_input(ctx: BenchContext, detector, items: int, pixels: int) -> tuple[int, ...]:
    from ..face.detector import tiled_pyramid_layout

    c = detector.contract
    rows, cols = ctx.detect_photo().shape[:2]
    _, (nr, nc) = tiled_pyramid_layout(rows, cols, c.pyramid_downsample, c.pyramid_padding, c.pyramid_outer_padding)
    return (1, 3, nr, nc)


KIND_CASES: dict[str, KindTask] = {
    "embed": KindTask(embed_calls, open_options=lambda config: {"max_batch": max(config.embed_batches)},
                      network_input=lambda ctx, embedder, items, pixels: (items, 3, pixels, pixels)),
    "detect": KindTask(detect_calls, network_input=detect_network_input),
    "style": KindTask(style_calls, network_input=lambda ctx, stylizer, items, pixels: (1, 3, pixels, pixels)),
}


def kind_models(engines: Path, kind: ModelKind) -> list[str]:
    """The models of ``kind`` to time: the kind's one model, or each one built of a one-model-per-network kind."""
    if kind.model_prefix is None:
        return [kind.name]
    return sorted(folder.name for folder in engines.glob(f"{kind.model_prefix}*") if any(folder.glob("*.manifest.json")))


def kind_cases(ctx: BenchContext, kind: ModelKind) -> Iterator[Case | Skipped]:
    """Every built model of ``kind`` x precision x backend asked for, then the task's peers."""
    task, how = kind.bench_task, KIND_CASES[kind.bench_task]
    engines = ctx.config.engines
    models = kind_models(engines, kind)
    if not models:
        yield Skipped(task, f"{kind.model_prefix}*", "*", "*", f"no {kind.name} built in {engines}: run `facestyle build`")
    for model in models:
        for precision, onnx in built_precisions(engines, model).items():
            for backend in backends_for(ctx.config, precision):
                try:
                    runtime = kind.runtime_class()(ctx.backend(backend, model, onnx, precision), source=str(onnx),
                                                   **how.open_options(ctx.config))
                except UNAVAILABLE as exc:
                    yield Skipped(task, model, backend, precision, str(exc))
                    continue
                with closing_runtime(runtime):
                    for batch, size, call in how.calls(ctx, runtime):
                        flops = (network_flops(str(onnx), how.network_input(ctx, runtime, batch, size))
                                 if how.network_input else None)
                        yield Case(model, backend, precision, batch, size, call, boundary_for(task, backend), task, flops=flops)
    if ctx.config.peers and task in PEERS:
        yield from PEERS[task](ctx)


def e2e_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """The whole path an app runs, at fp32, on each backend."""
    yield from identify_cases(ctx)
    yield from stylize_e2e_cases(ctx)
    yield from startup_cases(ctx)


def startup_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """What a shell script pays per call: the CLI from a cold process (the OS file cache is warm)."""
    import subprocess
    import sys

    from ..errors import FacestyleError

    if "ort-cpu" not in ctx.config.backends:  # the CLI's default backend here
        return
    command = [sys.executable, "-c", "import sys; from facestyle.cli import main; sys.exit(main(sys.argv[1:]))",
               "embed", str(ctx.photo_path), "--json", "--engines", str(ctx.config.engines)]

    def run() -> bytes:
        done = subprocess.run(command, capture_output=True, timeout=120)
        if done.returncode != 0:
            raise FacestyleError(f"facestyle embed exited {done.returncode}: {done.stderr.decode()[-300:]}")
        return done.stdout

    try:
        run()
    except FacestyleError as exc:
        yield Skipped("e2e-startup", "cli embed", "ort-cpu", "fp32", str(exc))
        return
    yield Case("cli embed (new process)", "ort-cpu", "fp32", 1, max(ctx.photo.shape[:2]), run,
               boundary_for("e2e-startup", "ort-cpu"), "e2e-startup")


def identify_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """Identify end to end on each backend: fp32 throughout, and with each detector variant that keeps the
    boxes (int8: recall 1.0, IoU >= 0.95 against fp32 in its manifest) where it is built."""
    from ..face import detector as fd
    from ..face.gallery import identify_photo

    side = max(ctx.photo.shape[:2])
    detector_precisions = [p for p in ("fp32", "int8") if p in built_precisions(ctx.config.engines, fd.MODEL_NAME)]
    for backend in ctx.config.backends:
        for precision in detector_precisions:
            try:
                analyzer = open_analyzer(ctx, backend, precision)
            except UNAVAILABLE as exc:
                yield Skipped("e2e-identify", "identify", backend, precision, str(exc))
                continue
            name = "identify" if precision == "fp32" else f"identify (detector {precision})"
            with closing_runtime(analyzer.detector), closing_runtime(analyzer.embedder):
                gallery = ctx.gallery(analyzer.embedder.identity)
                yield Case(name, backend, "fp32", 1, side, partial(identify_photo, gallery, analyzer, ctx.photo_jpeg),
                           boundary_for("e2e-identify", backend), "e2e-identify")


def open_analyzer(ctx: BenchContext, backend: str, detector_precision: str = "fp32"):
    """A FaceAnalyzer whose detector (``detector_precision``) and embedder (fp32) both run on ``backend``."""
    from ..face import detector as fd, embedder as fe
    from ..face.analyzer import FaceAnalyzer
    from ..face.landmarks import ShapePredictor

    engines = ctx.config.engines
    detect_onnx = built_precisions(engines, fd.MODEL_NAME)[detector_precision]
    embed_onnx = built_precisions(engines, fe.MODEL_NAME)["fp32"]
    detector = fd.FaceDetector(ctx.backend(backend, fd.MODEL_NAME, detect_onnx, detector_precision), source=str(detect_onnx))
    try:
        embedder = fe.FaceEmbedder(ctx.backend(backend, fe.MODEL_NAME, embed_onnx, "fp32"), source=str(embed_onnx),
                                   sha256=fe.file_sha256(embed_onnx))  # its identity: the gallery case records it
    except BaseException:
        detector.close()
        raise
    return FaceAnalyzer(detector, ShapePredictor.from_engines(engines), embedder)


def stylize_e2e_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    from ..images import load_image
    from ..style.stylizer import Stylizer

    kind, engines = KINDS["style"], ctx.config.engines
    models = kind_models(engines, kind)
    if not models:
        yield Skipped("e2e-stylize", "stylize", "*", "*", f"no {kind.name} built in {engines}: run `facestyle build`")
    side = max(ctx.photo.shape[:2])
    for model in models:
        style = model.removeprefix(kind.model_prefix)
        onnx = built_precisions(engines, model)["fp32"]
        for backend in ctx.config.backends:
            try:
                stylizer = Stylizer(ctx.backend(backend, model, onnx, "fp32"), source=str(onnx))
            except UNAVAILABLE as exc:
                yield Skipped("e2e-stylize", f"stylize {style}", backend, "fp32", str(exc))
                continue

            def stylize_jpeg(stylizer=stylizer) -> bytes:
                return encode_jpeg(stylizer.stylize(load_image(ctx.photo_jpeg)))

            with closing_runtime(stylizer):
                yield Case(f"stylize {style}", backend, "fp32", 1, side, stylize_jpeg,
                           boundary_for("e2e-stylize", backend), "e2e-stylize")


def _builders() -> dict[str, Callable[[BenchContext], Iterator[Case | Skipped]]]:
    kinds = [k for k in KINDS.values() if k.bench_task]
    untimed = [k.bench_task for k in kinds if k.bench_task not in KIND_CASES]
    if untimed:  # a kind got a bench task in the kinds table but no calls here
        raise RuntimeError(f"facestyle.bench.cases has no KIND_CASES entry for task(s) {untimed}")
    return {**{k.bench_task: partial(kind_cases, kind=k) for k in kinds}, E2E_TASK: e2e_cases}


CASE_BUILDERS = _builders()  # task -> its case generator


def iter_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """Every case of the tasks asked for, built one model at a time.

    A model is freed when the iterator moves past its cases, or is closed or dropped: run each case
    before asking for the next one (as :func:`~facestyle.bench.run.run_benchmark` does), and keep the
    iterator alive meanwhile.
    """
    for task in ctx.config.tasks:
        yield from CASE_BUILDERS[task](ctx)
