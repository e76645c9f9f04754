"""A trained embedding (and its similarity head) out through the one ONNX path: export, parity against torch on
real chips, and a face-embed manifest in ``RUN/engines``, so ``--model RUN`` (or ``--engines RUN/engines``)
runs it wherever dlib's model runs."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facestyle.contract import EmbeddingContract
from facestyle.manifest import file_sha256, manifest_path, write_manifest

from ..provenance import built_at, versions
from ..recipes.base import io_of
from ..spec import FACE_EMBED

ENGINES = "engines"  # inside the run folder


def model_folder(run: str | Path) -> Path:
    return Path(run) / ENGINES / FACE_EMBED.name


def _weights_sha(module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def export_trained(trainer, threshold: float, calibration_pairs: dict, sample_chips: np.ndarray,
                   data_description: str, head=None, head_pairs=None, head_figures: dict | None = None) -> Path:
    """Write ``RUN/engines/face-embed/fp32.onnx`` and its manifest (and ``head.onnx``); returns the ONNX path."""
    import torch

    from ..onnx_export import onnx_from_module
    from ..validate import validate_onnx
    from .train import DLIB_MEAN, SCALE, normalise_chips

    config, module = trainer.config, trainer.model.eval()
    counts = calibration_pairs  # {"same": n, "different": m}: the pairs the threshold was calibrated on
    folder = model_folder(trainer.out)
    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / "fp32.onnx"
    weights_sha = _weights_sha(module)
    contract = EmbeddingContract(
        model=FACE_EMBED.name, input_name=FACE_EMBED.inputs[0].name, output_name=FACE_EMBED.outputs[0].name,
        input_size=(150, 150), layout="NCHW", channel_order="RGB", channel_mean=DLIB_MEAN, scale=SCALE,
        output_normalized=config.normalize, distance="euclidean", threshold=round(float(threshold), 6),
        source_sha256=weights_sha)
    chips = normalise_chips(sample_chips[:8])
    onnx_from_module(module, FACE_EMBED, (torch.from_numpy(chips[:3]),), artifact, contract.to_metadata())
    try:
        report = validate_onnx(artifact, module, FACE_EMBED, [{"chips": chips[:1]}, {"chips": chips}])
    except BaseException:
        artifact.unlink(missing_ok=True)
        raise
    manifest = {
        "model": FACE_EMBED.name, "kind": "face-embed", "precision": "fp32", "artifact": artifact.name,
        "artifact_sha256": file_sha256(artifact), "fingerprint": FACE_EMBED.fingerprint(weights_sha),
        "source": {"trained_by": "facestyle train-embedding", "run": str(trainer.out), "weights_sha256": weights_sha,
                   "steps": trainer.step, "training_seconds": round(trainer.seconds), "data": data_description,
                   "config": asdict(config),
                   "parameters": sum(p.numel() for p in module.parameters())},
        "opset": FACE_EMBED.opset,
        **io_of(FACE_EMBED),
        "contract": asdict(contract),
        "threshold": contract.threshold,
        "threshold_source": f"calibrated on {counts['same']} same + {counts['different']} different training pairs "
                            "(best accuracy)",
        "parity": {"reference": "the trained PyTorch module", "inputs": "training chips, batch 1 and 8",
                   **report.to_json()},
        "versions": versions("torch", "onnx", "onnxruntime"),
        "built_at": built_at(),
    }
    if head is not None:
        from .head import export_head

        head_file = folder / "head.onnx"
        parity = export_head(head, *head_pairs, head_file)
        manifest["head"] = {"artifact": head_file.name, "artifact_sha256": file_sha256(head_file), "form": head.form,
                            "probability_threshold": 0.5, "trained_on": "the same training pairs",
                            "figures": head_figures or {}, "parity": parity}
    write_manifest(manifest_path(artifact), manifest)
    return artifact
