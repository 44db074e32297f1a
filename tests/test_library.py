"""scalelab.course and scalelab.savedmodel: the plumbing every chapter relies on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalelab import course, savedmodel


def test_record_appends_json_ready_values(tmp_path):
    path = tmp_path / "results.json"
    course.record("accuracy", np.float32(0.5), path)
    course.record("versions", ("0001", "0002"), path)
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "versions": ["0001", "0002"]}


def test_fast_mode_switches_on_while_nbgrader_executes(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    sizes = course.setup("01_savedmodel", fast=False)
    assert sizes.fast is True and sizes.epochs == course.SIZES["01_savedmodel"]["epochs"][0]


def test_fast_mode_stays_off_for_learners(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    sizes = course.setup("01_savedmodel", fast=False)
    assert sizes.fast is False and sizes.epochs == course.SIZES["01_savedmodel"]["epochs"][1]


def test_setup_names_the_chapters_it_knows_when_given_another():
    with pytest.raises(KeyError, match="01_savedmodel"):
        course.setup("07_nothing")


def test_version_path_is_zero_padded_and_rejects_non_versions(tmp_path):
    assert savedmodel.version_path(tmp_path, 2) == tmp_path / "0002"
    for bad in (0, -1, "2", 1.0, True):
        with pytest.raises(ValueError, match="positive integer"):
            savedmodel.version_path(tmp_path, bad)


def test_list_files_explains_a_folder_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a SavedModel directory"):
        savedmodel.list_files(tmp_path)


def test_saved_model_cli_failure_quotes_the_tool_error(tmp_path):
    with pytest.raises(RuntimeError, match="saved_model_cli failed"):
        savedmodel.saved_model_cli("show", "--dir", tmp_path / "missing", "--all")


def test_export_classifier_serves_raw_pixels_and_names_classes(tmp_path):
    import tensorflow as tf

    from scalelab import data, models

    digits = data.load("digits", max_train=200)
    model, _ = models.train_classifier(digits, epochs=1)
    export_dir = savedmodel.export_classifier(model, tmp_path / "model", digits.class_names)
    assert ("assets/class_names.txt", 20) in savedmodel.list_files(export_dir)
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    outputs = serve(images=tf.constant(digits.x_test[:4]))
    expected = model(data.scale(digits.x_test[:4])).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-6)
    names = [digits.class_names[i] for i in expected.argmax(axis=1)]
    assert [n.decode() for n in outputs["class_name"].numpy()] == names


def test_small_memory_follows_the_override_and_otherwise_the_container_limit(monkeypatch):
    monkeypatch.setenv("SCALELAB_SMALL_MEMORY", "1")
    assert course.small_memory()
    monkeypatch.setenv("SCALELAB_SMALL_MEMORY", "0")
    assert not course.small_memory()
    monkeypatch.delenv("SCALELAB_SMALL_MEMORY")
    monkeypatch.setattr(course, "memory_limit_mb", lambda: 2048.0)  # Binder's 2 GB
    assert course.small_memory()
    monkeypatch.setattr(course, "memory_limit_mb", lambda: None)  # no limit: this machine
    assert not course.small_memory()
