import math
import shutil

import numpy as np
import pytest

from facestyle.errors import ModelFormatError
from facestyle.export.dlib.network import Conv, Skip, Tag
from facestyle.export.dlib.recognition import architecture, read_recognition_net
from facestyle.export.dlib.serialization import DlibReader


def reader(raw: bytes) -> DlibReader:
    return DlibReader(raw, "mem.dat")


@pytest.mark.parametrize(
    "raw, value",
    [(b"\x01\x00", 0), (b"\x01\x05", 5), (b"\x81\x05", -5), (b"\x02\x34\x12", 0x1234), (b"\x84\x00\x00\x00\x80", -(2**31))],
)
def test_integers_decode_like_dlib(raw, value):
    r = reader(raw)
    assert r.int() == value
    assert r.remaining == 0


def test_float_is_mantissa_then_exponent():
    # 0.75 = 3 * 2**-2 ; dlib writes the int64 mantissa first, then the int16 exponent.
    assert reader(b"\x01\x03\x81\x02").float() == 0.75
    assert reader(b"\x01\x01\x02\x00\x7d").float() == math.inf  # exponent 32000
    assert math.isnan(reader(b"\x01\x01\x02\x02\x7d").float())  # exponent 32002


def test_strings_bools_and_tensors():
    data = np.array([1.5, -2.0, 0.25, 8.0, 0.0, 3.0], "<f4")
    raw = b"\x01\x05con_4" + b"1" + b"0" + b"\x01\x02" + b"\x01\x01\x01\x02\x01\x03\x01\x01" + data.tobytes()
    r = reader(raw)
    assert r.expect_string("con_4") == "con_4"
    assert r.bool() is True and r.bool() is False
    t = r.tensor()
    assert t.shape == (1, 2, 3, 1)
    np.testing.assert_array_equal(t.reshape(-1), data)
    r.expect_end()


def test_bad_control_byte_names_file_and_offset():
    with pytest.raises(ModelFormatError, match=r"mem\.dat at byte 2: bad control byte 0x70"):
        r = reader(b"\x01\x00\x70")
        r.int()
        r.int()


def test_truncated_tensor_says_how_many_bytes_are_missing():
    raw = b"\x01\x02" + b"\x01\x01\x01\x01\x01\x01\x01\x04" + b"\x00" * 7
    with pytest.raises(ModelFormatError,
                       match=r"at byte 10: file is truncated: tensor data \(1, 1, 1, 4\) needs 16 bytes, 7 remain"):
        reader(raw).tensor()


def test_unexpected_record_name_is_reported():
    with pytest.raises(ModelFormatError, match=r"at byte 0: expected record 'relu_', found 'fc_2'"):
        reader(b"\x01\x04fc_2").expect_string("relu_")


def test_architecture_matches_dlib_example():
    nodes = architecture()
    convs = [n for n in nodes if isinstance(n, Conv)]
    assert len(convs) == 29
    assert convs[0] == Conv(32, 7, 2, 0)
    assert sum(isinstance(n, (Tag, Skip)) for n in nodes) == 14 + 2 * 4  # tag1 per block (14), tag2 + skip1 per down block (4)
    assert [c.stride for c in convs].count(2) == 5  # stem + 4 down blocks


def test_reads_the_whole_recognition_model(model_files):
    w = read_recognition_net(model_files["recognition"])
    assert w.parameter_count == 5_614_592
    assert w.input["size"] == (150, 150)
    np.testing.assert_allclose(w.input["mean_rgb"], (122.782, 117.001, 104.298), atol=1e-4)
    assert w.loss["distance_threshold"] == pytest.approx(0.6) and w.loss["margin"] == pytest.approx(0.04)
    assert [c[0].shape for c in w.convs[:2]] == [(32, 3, 7, 7), (32, 32, 3, 3)]
    assert w.fc.shape == (128, 256)


def test_truncated_model_file_raises_with_offset(model_files, tmp_path):
    cut = tmp_path / "cut.dat"
    cut.write_bytes(model_files["recognition"].read_bytes()[:1_000_000])
    with pytest.raises(ModelFormatError, match=r"cut\.dat at byte \d+: file is truncated"):
        read_recognition_net(cut)


def test_other_dlib_models_are_rejected(model_files):
    from facestyle.export.dlib.files import DETECTOR_MODEL, locate_dlib_model

    with pytest.raises(ModelFormatError, match=r"mmod_human_face_detector\.dat at byte 2: "
                                               r"expected record 'loss_metric_' or 'loss_metric_2', found 'loss_mmod_'"):
        read_recognition_net(locate_dlib_model(DETECTOR_MODEL))
    with pytest.raises(ModelFormatError, match=r"shape_predictor_5_face_landmarks\.dat at byte 2: record name length -10"):
        read_recognition_net(model_files["shape5"])


def test_empty_and_trailing_bytes_are_rejected(model_files, tmp_path):
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match=r"empty\.dat at byte 0: file is empty"):
        read_recognition_net(empty)
    longer = tmp_path / "longer.dat"
    shutil.copy(model_files["recognition"], longer)
    with open(longer, "ab") as f:
        f.write(b"junk")
    with pytest.raises(ModelFormatError, match=r"4 unexpected bytes after the last record"):
        read_recognition_net(longer)


def test_conv_hyperparameters_are_checked_against_the_architecture(model_files, tmp_path):
    raw = bytearray(model_files["recognition"].read_bytes())
    # The stem conv record: con_4 params tensor, then num_filters=32 (01 20), nr=7 (01 07).
    start = raw.index(b"\x05con_4")
    params_bytes = 2 + 9 + 4 * (32 * 3 * 7 * 7 + 32)  # version, shape (4736 takes 3 bytes, 1 takes 2), data
    hyper = start + 6 + params_bytes
    assert raw[hyper : hyper + 4] == b"\x01\x20\x01\x07"
    raw[hyper + 3] = 5  # claim a 5x5 kernel
    bad = tmp_path / "bad.dat"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match=rf"at byte {hyper}: conv .* = \[32, 5, 7, 2, 2, 0, 0\], "
                                               r"architecture says \[32, 7, 7, 2, 2, 0, 0\]"):
        read_recognition_net(bad)


def test_reads_the_whole_detector_model_and_folds_batch_norm():
    from facestyle.export.dlib.detector import architecture, cell_mapping, read_detector_net
    from facestyle.export.dlib.files import DETECTOR_MODEL, locate_dlib_model

    w = read_detector_net(locate_dlib_model(DETECTOR_MODEL))
    assert w.parameter_count == 181_141
    assert [c[0].shape[:2] for c in w.convs] == [(16, 3), (32, 16), (32, 32), (45, 32), (45, 45), (45, 45), (1, 45)]
    assert len(w.affines) == 6  # bn_con2 records, folded to (gamma / sqrt(var + eps), beta - g * mean)
    assert w.loss["detector_windows"] == [{"width": 80, "height": 80, "label": ""}]
    assert w.loss["overlaps_nms"]["iou_thresh"] == pytest.approx(0.33828, abs=1e-5)
    assert (w.input["pyramid_padding"], w.input["pyramid_outer_padding"]) == (10, 11)
    assert cell_mapping(architecture()) == (8, 14)  # score cell c looks at tensor point 8c + 14
