"""TF Serving config files, parsed with TF Serving's own message definitions."""

import os
import stat

import pytest
from google.protobuf import text_format

from serving.server import engine
from serving.server.config import (BatchingParameters, ConfigError, ModelEntry, batching_options, load_batching_parameters,
                                   load_model_server_config, load_monitoring_config, model_entries)

SERVING = os.path.join(os.path.dirname(__file__), "..", "serving")


def test_models_config_parses_with_tf_serving_proto():
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(SERVING, "models.config")) as fh:
        config = text_format.Parse(fh.read(), model_server_config_pb2.ModelServerConfig())
    models = {c.name: c for c in config.model_config_list.config}
    assert set(models) == {"lenet5", "vgg16"}
    for c in models.values():
        assert c.model_platform == "tensorflow"
        assert c.model_version_policy.latest.num_versions == 2
        assert dict(c.version_labels) == {"stable": 1, "canary": 2}
        assert c.base_path == f"/models/{c.name}"


def test_model_entries_and_models_dir_override():
    config = load_model_server_config(os.path.join(SERVING, "models.config"))
    entries = model_entries(config, models_dir="/data/models")
    assert entries[0] == ModelEntry(name="lenet5", base_path="/data/models/lenet5", policy="latest", num_latest=2,
                                    labels=(("canary", 2), ("stable", 1)))


def test_batching_config_parses_and_is_consistent():
    params = load_batching_parameters(os.path.join(SERVING, "batching.config"))
    options = batching_options(params)
    assert options.max_batch_size == 512 and options.batch_timeout_micros == 2000
    assert list(params.allowed_batch_sizes)[-1] == options.max_batch_size
    assert BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"


def test_batching_defaults_are_tf_servings():
    options = batching_options(BatchingParameters())
    assert (options.max_batch_size, options.batch_timeout_micros, options.max_enqueued_batches) == (1000, 0, 100)


def test_monitoring_config_uses_default_prometheus_path():
    config = load_monitoring_config(os.path.join(SERVING, "monitoring.config"))
    assert config.prometheus_config.enable and config.prometheus_config.path == "/monitoring/prometheus/metrics"


@pytest.mark.parametrize("text,match", [
    ("max_batch_size { value: 64 }\nbogus_field: 1\n", "bogus_field"),
    ("max_batch_size: 64\n", "max_batch_size"),  # needs the wrapper message, as in TF Serving
    ("max_batch_size { value: 64 }\nallowed_batch_sizes: 32\n", "end at max_batch_size"),
])
def test_bad_batching_config(tmp_path, text, match):
    path = tmp_path / "batching.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_batching_parameters(path)


def test_bad_model_config(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: 'a' base_path: '/x' colour: 'red' } }")
    with pytest.raises(ConfigError, match="colour"):
        load_model_server_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_model_server_config(tmp_path / "missing.config")


def test_tfserving_engine_needs_the_binary(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="tensorflow_model_server is not on PATH"):
        engine.tfserving_command([ModelEntry("lenet5", "models/lenet5", "latest")], port=8500, rest_port=8501,
                                 batching_config=None, monitoring_config=None, config_dir=str(tmp_path))


def test_tfserving_command_uses_the_same_configs(monkeypatch, tmp_path):
    # The real binary cannot be installed here; a stand-in on PATH lets us check the command line.
    binary = tmp_path / "tensorflow_model_server"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    config = load_model_server_config(os.path.join(SERVING, "models.config"))
    entries = model_entries(config, models_dir=str(tmp_path / "models"))
    cmd = engine.tfserving_command(entries, port=8500, rest_port=8501, batching_config=engine.DEFAULT_BATCHING_CONFIG,
                                   monitoring_config=engine.DEFAULT_MONITORING_CONFIG, config_dir=str(tmp_path))
    assert cmd[0] == str(binary)
    assert "--port=8500" in cmd and "--rest_api_port=8501" in cmd and "--enable_batching" in cmd
    assert f"--batching_parameters_file={engine.DEFAULT_BATCHING_CONFIG}" in cmd
    written = load_model_server_config(tmp_path / "models.config")
    assert [c.base_path for c in written.model_config_list.config] == \
        [str(tmp_path / "models" / "lenet5"), str(tmp_path / "models" / "vgg16")]
    assert dict(written.model_config_list.config[0].version_labels) == {"stable": 1, "canary": 2}


def test_serve_with_missing_models_dir_says_how_to_train(tmp_path):
    with pytest.raises(ConfigError, match="formdigits train --export-dir"):
        engine.resolve_entries(str(tmp_path / "nothing"), None)
