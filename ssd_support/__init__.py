"""The product layers around the SSD lesson, one flat module each.

The lesson is the top level: ``model.py``, ``utils.py``, ``datasets.py`` and the scripts ``train.py``,
``eval.py``, ``detect.py``, ``create_data_lists.py``. Everything a real run needs beyond the lesson (checkpoint
files and resume, the run log, torchrun, the fast TRAIN path, the vectorised mAP, weight conversion, ONNX, the
torchvision-style detector, data formats, plots) is a module of this package.

The rules:
- the lesson modules import only what cannot import them back: ``model`` and ``utils`` only this package's leaves
  (modules that import no lesson module: ``files``, ``images``, ``nms``), ``datasets`` also ``fast_augment``, which builds
  on utils' random draws;
- nothing in this package imports a top-level script (train, eval, detect, create_data_lists, export,
  convert_weights); the scripts import what they need from here;
- a new product feature goes here, as a module of its own, and the script that offers it gains a flag.

This file imports nothing, so that ``ssd_support.onnx_detector`` stays importable without torch.
"""
