"""Where detect.py's network runs (ssd_support/backends.py). detect.py's runs on either backend, compared detection by
detection, are in tests/test_detect_features.py and tests/test_export.py."""

import pytest

import detect
from ssd_support import backends


def test_backend_auto_is_onnxruntime_on_a_cpu_where_installed_and_pytorch_elsewhere(monkeypatch):
    assert backends.choose_backend("auto", "cpu", installed=True)[0] == "onnxruntime"
    assert backends.choose_backend("auto", "cpu", installed=False) == (
        "torch", "--backend auto: onnxruntime is not installed (pip install onnx onnxruntime: faster on a CPU)")
    assert backends.choose_backend("auto", "cuda", installed=True) == ("torch", "--backend auto: PyTorch on cuda")
    assert backends.choose_backend("torch", "cpu", installed=True)[0] == "torch"
    with pytest.raises(ValueError, match="--backend onnxruntime runs on the CPU: pass --device cpu"):
        backends.choose_backend("onnxruntime", "cuda")
    assert detect.parse_args(["x.jpg"]).backend == "auto"  # the default
