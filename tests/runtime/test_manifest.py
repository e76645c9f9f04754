"""Artifacts are written atomically, with ordinary permissions."""


def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path):
    import os
    import stat

    from facestyle.manifest import atomic_write_bytes

    atomic_write_bytes(tmp_path / "artifact.bin", b"x")
    (tmp_path / "plain.bin").write_bytes(b"x")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    assert mode(tmp_path / "artifact.bin") == mode(tmp_path / "plain.bin")
    assert not list(tmp_path.glob(".artifact.bin.*"))  # no temporary file left behind
