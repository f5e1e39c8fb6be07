"""The rule that keeps the scripts readable as their lesson (README section 2, ssd_support/__init__.py).

A feature is a module of ``ssd_support/``; a script gains a flag and a call, not a function. These tests fail when
a script defines more than its lesson, when a lesson file grows past its line budget, or when the package imports a
script, so that the rule does not erode again one helper at a time.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each script may define at its top level: its lesson functions, parse_args and main. A new function belongs
# in ssd_support/ (a module of its own, or the module whose feature it extends); add a name here only when it is
# part of the lesson the script teaches.
LESSON_FUNCTIONS = {
    "create_data_lists.py": {"_voc_sources", "create_data_lists", "parse_args", "main"},
    "detect.py": {"detect_batch", "detect", "format_detections_json", "parse_args", "main"},
    "eval.py": {"collect_detections", "read_image_sizes", "_check_metric", "score_detections", "evaluate",
                "format_table", "parse_args", "_nan_to_none", "_fail", "load_model", "main"},
    "train.py": {"parse_args", "main", "train", "training_loop", "finish_run", "train_step", "forward_and_loss",
                 "next_batch", "learning_rate_at", "cosine_learning_rate_at", "schedule_for_epochs",
                 "make_param_groups", "make_optimizer", "set_learning_rate", "build_model", "evaluation_on",
                 "prepare_training", "apply_epochs"},
    "export.py": {"parse_args", "main"},
    "convert_weights.py": {"parse_args", "main"},
}

# Line budgets of the lesson files (issue 30): a reader follows each in one sitting.
LINE_BUDGETS = {"create_data_lists.py": 420, "detect.py": 420, "eval.py": 420, "train.py": 650, "model.py": 800,
                "README.md": 800}

SCRIPT_MODULES = {Path(name).stem for name in LESSON_FUNCTIONS}

# Tests mirror the code: the tests of ssd_support/<module>.py are in tests/test_<module>.py, except these, tested
# through the script or the feature they serve (the scripts' end-to-end tests stay grouped by script).
TESTED_ELSEWHERE = {
    "coco_eval": "test_coco.py", "coco_format": "test_coco.py", "cpu_layout": "test_model.py",
    "detection_export": "test_error_analysis.py", "drawing": "test_detect.py", "launch": "test_train_runs.py",
    "limits": "test_checkpoints.py", "nms": "test_loss_and_detection.py", "onnx_export": "test_export.py",
    "previews": "test_train_features.py", "resumable_loader": "test_train_robust.py",
    "run_log": "test_train_features.py", "split_loss": "test_train_features.py", "toy_data": "test_data_dataset.py",
    "training_data": "test_train_levers.py", "training_run": "test_train_robust.py",
    "weights": "test_convert_weights.py",
}


def top_level_definitions(path):
    """:return: the names of the functions and classes defined at the top level of the Python file ``path``"""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def imported_modules(path):
    """:return: the top-level names of every module the Python file ``path`` imports, at any depth of its code"""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("script", sorted(LESSON_FUNCTIONS))
def test_a_script_defines_only_its_lesson(script):
    extra = top_level_definitions(ROOT / script) - LESSON_FUNCTIONS[script]
    assert not extra, (f"{script} defines {', '.join(sorted(extra))}: a feature is a module of ssd_support/ and the "
                       f"script gains a flag and a call (README section 2)")


@pytest.mark.parametrize("name", sorted(LINE_BUDGETS))
def test_a_lesson_file_keeps_its_line_budget(name):
    n_lines = len((ROOT / name).read_text().splitlines())
    assert n_lines <= LINE_BUDGETS[name], f"{name} has {n_lines} lines, over its budget of {LINE_BUDGETS[name]}"


def test_the_package_never_imports_a_script():
    offenders = {path.name: sorted(imported_modules(path) & SCRIPT_MODULES)
                 for path in sorted((ROOT / "ssd_support").glob("*.py"))}
    offenders = {name: scripts for name, scripts in offenders.items() if scripts}
    assert not offenders, f"ssd_support modules import scripts: {offenders}"


def test_every_package_module_has_its_tests_where_a_newcomer_looks():
    modules = {path.stem for path in (ROOT / "ssd_support").glob("*.py")} - {"__init__"}
    unfound = {module: TESTED_ELSEWHERE.get(module, f"test_{module}.py") for module in sorted(modules)}
    unfound = {module: name for module, name in unfound.items() if not (ROOT / "tests" / name).is_file()}
    assert not unfound, f"no test file for these ssd_support modules (expected tests/<file>): {unfound}"
    named_twice = sorted(module for module in TESTED_ELSEWHERE if (ROOT / "tests" / f"test_{module}.py").is_file())
    assert not named_twice, f"TESTED_ELSEWHERE names modules that have tests/test_<module>.py: {named_twice}"


def test_the_checks_see_a_definition_and_an_import(tmp_path):
    """The AST readers above find what they look for (so an empty set is not a blind spot)."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom detect import detect\n\ndef f():\n    import eval\n\nclass C:\n    pass\n")
    assert top_level_definitions(sample) == {"f", "C"}
    assert imported_modules(sample) & SCRIPT_MODULES == {"detect", "eval"}
