"""The runtime must import and run where torch (and onnx) cannot be imported."""

import subprocess
import sys
import textwrap

from conftest import import_blocker


def test_runtime_embeds_without_torch(engines_dir):
    script = import_blocker("torch", "onnx", "tensorrt") + textwrap.dedent(
        f"""
        import numpy as np
        import facestyle
        from facestyle.face.analyzer import FaceAnalyzer
        from facestyle.face.embedder import FaceEmbedder

        embedder = FaceEmbedder.from_engines({str(engines_dir)!r})
        chips = np.full((2, 150, 150, 3), 128, np.uint8)
        print(embedder.embed(chips).shape, embedder.backend.provider)
        analyzer = FaceAnalyzer.from_engines({str(engines_dir)!r})
        print(len(analyzer.faces(np.full((120, 160, 3), 90, np.uint8))))
        assert not any(m.split(".")[0] in ("torch", "onnx") for m in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["(2, 128) CPUExecutionProvider", "0"]
