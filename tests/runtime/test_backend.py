import numpy as np
import pytest

from conftest import save_add_one_onnx
from facestyle.backends.onnxruntime import OnnxRuntimeBackend, available_providers
from facestyle.errors import BackendUnavailableError, BadInputError, FacestyleError, ModelFormatError


@pytest.fixture(scope="module")
def add_one(tmp_path_factory):
    return save_add_one_onnx(tmp_path_factory.mktemp("tiny") / "add_one.onnx", {"facestyle.model": '"add-one"'})


def test_infers_and_reports_provider_and_metadata(add_one):
    with OnnxRuntimeBackend(add_one) as backend:
        assert backend.provider == "CPUExecutionProvider"
        assert backend.metadata == {"facestyle.model": '"add-one"'}
        meta = backend.input_metadata["x"]
        assert meta.shape == (None, 3) and meta.dtype == np.float32
        out = backend.infer({"x": np.array([[1, 2, 3], [4, 5, 6]], np.float32)})
    np.testing.assert_array_equal(out["y"], [[2, 3, 4], [5, 6, 7]])


def test_unavailable_provider_raises_instead_of_falling_back(add_one):
    assert "NoSuchExecutionProvider" not in available_providers()
    with pytest.raises(BackendUnavailableError,
                       match=r"onnxruntime here has no NoSuchExecutionProvider \(available: .*CPUExecutionProvider"):
        OnnxRuntimeBackend(add_one, providers=["NoSuchExecutionProvider"]).activate()


@pytest.mark.parametrize(
    "feed, message",
    [
        ({"z": np.zeros((1, 3), np.float32)},
         r"feed has inputs \['z'\], the model takes \['x'\] \(missing \['x'\]\) \(unexpected \['z'\]\)"),
        ({"x": np.zeros((1, 3), np.float64)}, r"input 'x': expected float32\[\?, 3\], got float64\[1, 3\]"),
        ({"x": np.zeros((2, 4), np.float32)}, r"input 'x': expected float32\[\?, 3\], got float32\[2, 4\]"),
        ({"x": np.zeros(3, np.float32)}, r"input 'x': expected float32\[\?, 3\], got float32\[3\]"),
        ({"x": [[1.0, 2.0, 3.0]]}, r"input 'x': expected a numpy array, got list"),
    ],
)
def test_feed_is_checked_against_input_metadata(add_one, feed, message):
    with OnnxRuntimeBackend(add_one) as backend, pytest.raises(BadInputError, match=message):
        backend.infer(feed)


def test_infer_before_activate_is_an_error(add_one):
    with pytest.raises(FacestyleError, match="not active: call activate"):
        OnnxRuntimeBackend(add_one).infer({"x": np.zeros((1, 3), np.float32)})


def test_missing_and_corrupt_models_name_the_file(tmp_path):
    with pytest.raises(ModelFormatError, match=r"nothere\.onnx: no such ONNX model"):
        OnnxRuntimeBackend(tmp_path / "nothere.onnx").activate()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelFormatError, match=r"junk\.onnx: onnxruntime cannot load it"):
        OnnxRuntimeBackend(junk).activate()


def test_threads_are_set_deliberately_per_process_and_per_model(add_one, monkeypatch):
    from facestyle.backends import onnxruntime as ort_backend

    def options_of(backend):
        backend.activate()
        options = backend.inference.get_session_options()
        backend.deactivate()
        return options

    options = options_of(OnnxRuntimeBackend(add_one))
    assert options.inter_op_num_threads == 1  # one call at a time per inference: no second pool
    monkeypatch.setenv("FACESTYLE_THREADS", "3")
    assert options_of(OnnxRuntimeBackend(add_one)).intra_op_num_threads == 3
    ort_backend.set_default_threads(1)
    try:
        assert options_of(OnnxRuntimeBackend(add_one)).intra_op_num_threads == 1  # --threads beats the variable
        assert options_of(OnnxRuntimeBackend(add_one, intra_op_threads=2)).intra_op_num_threads == 2
    finally:
        ort_backend.set_default_threads(None)
    with pytest.raises(BadInputError, match="threads: expected an int >= 1, got 0"):
        ort_backend.set_default_threads(0)
    monkeypatch.setenv("FACESTYLE_THREADS", "many")
    with pytest.raises(BadInputError, match=r"\$FACESTYLE_THREADS='many': expected an int >= 1"):
        OnnxRuntimeBackend(add_one).activate()


def test_the_threads_option_of_the_command_line(capsys):
    from facestyle.backends.onnxruntime import default_threads
    from facestyle.cli import main

    with pytest.raises(SystemExit) as refused:  # an argument error, as argparse ends: exit 2, one line
        main(["--threads", "0", "styles", "--engines", "/nonexistent-engines"])
    assert refused.value.code == 2
    assert capsys.readouterr().err == "facestyle: error: --threads: must be >= 1, got 0\n"
    assert main(["--threads", "1", "styles", "--engines", "/nonexistent-engines"]) == 0
    assert default_threads() is None  # for that command only


def test_the_optimised_graph_cache_gives_the_same_outputs_and_stays_bounded(add_one, tmp_path, monkeypatch):
    from facestyle.backends import ort_cache

    monkeypatch.setenv("FACESTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ort_cache, "MIN_BYTES", 0)
    x = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    first = OnnxRuntimeBackend(add_one).activate()
    expected = first.infer(x)
    entries = list(ort_cache.cache_dir().glob("*.ort"))
    assert len(entries) == 1 and not list(ort_cache.cache_dir().glob(".*tmp"))
    again = OnnxRuntimeBackend(add_one)
    again.activate()
    assert again.inference._model_path.endswith(".ort")  # loaded from the cache
    np.testing.assert_array_equal(again.infer(x)["y"], expected["y"])
    assert again.metadata == first.metadata  # the contract travels with the cached graph too
    entries[0].write_bytes(b"damaged")
    np.testing.assert_array_equal(OnnxRuntimeBackend(add_one).activate().infer(x)["y"], expected["y"])  # rebuilt
    for i in range(ort_cache.KEEP + 3):
        (ort_cache.cache_dir() / f"old-{i}.ort").write_bytes(b"")
    ort_cache.prune(ort_cache.cache_dir())
    assert len(list(ort_cache.cache_dir().glob("*.ort"))) == ort_cache.KEEP
    monkeypatch.setenv("FACESTYLE_ORT_CACHE", "0")
    assert ort_cache.cached_path(add_one, "any") is None
    monkeypatch.setenv("FACESTYLE_ORT_CACHE", "1")
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    monkeypatch.setenv("FACESTYLE_CACHE", str(blocked))
    np.testing.assert_array_equal(OnnxRuntimeBackend(add_one).activate().infer(x)["y"], expected["y"])  # no cache, same model
