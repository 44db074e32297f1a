"""scalelab.data: offline digits by default, clear messages when a download is impossible."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest

from scalelab import data


def test_digits_load_offline_as_uint8_images_with_disjoint_splits():
    digits = data.load("digits")
    assert digits.image_shape == (8, 8)
    assert digits.n_classes == 10
    for images, labels in [
        (digits.x_train, digits.y_train),
        (digits.x_valid, digits.y_valid),
        (digits.x_test, digits.y_test),
    ]:
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        assert len(images) == len(labels) > 300
    assert digits.x_train.max() == 255
    total = len(digits.x_train) + len(digits.x_valid) + len(digits.x_test)
    assert total == 1797


def test_digits_splits_are_the_same_on_every_load():
    first, second = data.load("digits"), data.load("digits")
    np.testing.assert_array_equal(first.x_test, second.x_test)


def test_max_train_caps_only_the_training_split():
    capped = data.load("digits", max_train=100)
    assert len(capped.x_train) == 100
    assert len(capped.x_test) == len(data.load("digits").x_test)


def test_scale_maps_pixels_to_unit_floats():
    scaled = data.scale(np.array([[0, 255]], dtype=np.uint8))
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, [[0.0, 1.0]])


def test_unknown_data_set_names_the_choices():
    with pytest.raises(ValueError, match="digits, mnist, fashion_mnist"):
        data.load("cifar")


def test_bad_max_train_says_what_to_pass():
    with pytest.raises(ValueError, match="positive number"):
        data.load("digits", max_train=0)


def test_offline_mnist_raises_a_message_that_points_to_digits(monkeypatch):
    import keras

    def no_network():
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_network)
    with pytest.raises(data.DataUnavailable, match=r"data.load\('digits'\)") as caught:
        data.load("mnist")
    assert caught.value.__cause__ is None  # a message, not a chained traceback
