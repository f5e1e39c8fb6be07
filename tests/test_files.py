"""ssd_support/files.py: the one JSON reader, and the readers of users' JSON files that go through it."""

import pytest

from ssd_support.files import JSONFileError, read_json

# Each is JSON that json.load refuses with something other than JSONDecodeError, or not text at all.
BROKEN = {
    "deep": ("[" * 100_000, "nested too deeply"),  # RecursionError
    "long_number": ("1" * 5000, "digits"),  # ValueError: int() refuses more than 4300 digits
    "not_utf8": (b'{"a": "\xff\xfe"}', "UTF-8"),
    "truncated": ('{"background": 0,', "Expecting"),
}


def write(tmp_path, name, text):
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return str(path)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_read_json_refuses_every_broken_file_in_one_line(tmp_path, case):
    text, reason = BROKEN[case]
    path = write(tmp_path, f"{case}.json", text)
    with pytest.raises(JSONFileError) as caught:
        read_json(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not valid JSON (") and reason in message and "\n" not in message


def test_read_json_reads_json_and_leaves_missing_files_to_the_caller(tmp_path):
    assert read_json(write(tmp_path, "map.json", '{"background": 0, "cat": 1}')) == {"background": 0, "cat": 1}
    with pytest.raises(FileNotFoundError):
        read_json(str(tmp_path / "absent.json"))


def test_the_label_map_and_thresholds_readers_refuse_deep_nesting_in_one_line(tmp_path):
    """RecursionError escaped datasets.load_label_map and load_thresholds as a traceback (issue 32, 10)."""
    from datasets import load_label_map
    from ssd_support.score_thresholds import load_thresholds
    from ssd_support.training_run import split_size

    deep = "[" * 100_000
    write(tmp_path, "label_map.json", deep)
    with pytest.raises(ValueError, match=r"label_map\.json: not valid JSON \(nested too deeply\)"):
        load_label_map(str(tmp_path))
    with pytest.raises(ValueError, match=r"thresholds\.json: not valid JSON \(nested too deeply\)"):
        load_thresholds(write(tmp_path, "thresholds.json", deep))
    write(tmp_path, "TEST_images.json", deep)
    assert split_size(str(tmp_path), "TEST") == 0  # as for any unreadable list
