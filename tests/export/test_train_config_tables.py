"""The torch-free configs list the same choices as the torch-side tables they stand for."""

import pytest

pytest.importorskip("torch")


def test_the_configs_choices_are_the_trainers_tables():
    from facestyle import train_config
    from facestyle.export.embedding.archs import ARCHS
    from facestyle.export.embedding.triplet import MINERS
    from facestyle.export.style.transformer import SIZES
    from facestyle.export.style.vgg import TAPS

    assert set(train_config.ARCHS) == set(ARCHS) and set(train_config.MINERS) == set(MINERS)
    assert set(train_config.VARIANTS) == set(SIZES) and tuple(train_config.VGG_TAPS) == tuple(TAPS)
