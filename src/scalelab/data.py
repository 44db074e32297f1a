"""Image classification data: scikit-learn's digits offline, MNIST or Fashion-MNIST when online.

Every loader returns the same `ImageData`: uint8 images (n, height, width) in 0..255, int64 labels,
class names, and fixed train/valid/test splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DATASETS = ("digits", "mnist", "fashion_mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


class DataUnavailable(RuntimeError):
    """A data set could not be loaded (usually: no internet); the message says what to do."""


@dataclass(frozen=True)
class ImageData:
    """Train/valid/test splits of a small image classification data set."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image, e.g. (8, 8) for digits, (28, 28) for MNIST."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (
            f"ImageData({self.name!r}: train {len(self.x_train)}, valid {len(self.x_valid)}, "
            f"test {len(self.x_test)}, images {self.image_shape} uint8, {self.n_classes} classes)"
        )


def load(name: str = "digits", *, max_train: int | None = None, seed: int = 42) -> ImageData:
    """Load a data set by name ("digits" works offline); `max_train` caps the training split."""
    if name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}: choose one of {', '.join(DATASETS)}.")
    data = _load_digits(seed) if name == "digits" else _load_keras(name, seed)
    if max_train is not None:
        data = _cap_train(data, max_train)
    return data


def scale(images: np.ndarray) -> np.ndarray:
    """uint8 images in 0..255 → float32 in 0..1, the input the course's Keras models take."""
    return np.asarray(images, dtype=np.float32) / 255.0


def _load_digits(seed: int) -> ImageData:
    """scikit-learn's 1,797 8×8 handwritten digits (ships with the package, no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order], labels[order]
    n_test = n_valid = len(images) // 5
    return ImageData(
        name="digits",
        x_train=images[n_test + n_valid :],
        y_train=labels[n_test + n_valid :],
        x_valid=images[n_test : n_test + n_valid],
        y_valid=labels[n_test : n_test + n_valid],
        x_test=images[:n_test],
        y_test=labels[:n_test],
        class_names=tuple(str(d) for d in digits.target_names),
    )


def _load_keras(name: str, seed: int) -> ImageData:
    """MNIST or Fashion-MNIST through Keras (downloads once into ~/.keras/datasets)."""
    import keras

    loader = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # Keras raises whatever urllib raised, wrapped or not
        raise DataUnavailable(
            f"Could not download {name} ({type(error).__name__}: {error}). "
            "You seem to be offline or the data host is unreachable. "
            "Use data.load('digits'), which ships with scikit-learn and needs no download, "
            f"or retry {name} once you are online."
        ) from None
    order = np.random.default_rng(seed).permutation(len(x_train))
    x_train, y_train = x_train[order], y_train[order].astype(np.int64)
    n_valid = len(x_train) // 12
    class_names = FASHION_CLASSES if name == "fashion_mnist" else tuple(map(str, range(10)))
    return ImageData(
        name=name,
        x_train=x_train[n_valid:],
        y_train=y_train[n_valid:],
        x_valid=x_train[:n_valid],
        y_valid=y_train[:n_valid],
        x_test=x_test,
        y_test=y_test.astype(np.int64),
        class_names=class_names,
    )


def _cap_train(data: ImageData, max_train: int) -> ImageData:
    """Keep only the first `max_train` training images (fast mode)."""
    if max_train < 1:
        raise ValueError(f"max_train must be a positive number of images, not {max_train}.")
    from dataclasses import replace

    return replace(data, x_train=data.x_train[:max_train], y_train=data.y_train[:max_train])
