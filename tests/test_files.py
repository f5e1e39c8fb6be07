"""ssd_support/files.py: the rule for every writer (RunOutputs): an output that is an input is refused before any work,
a file this run did not write is not replaced without --overwrite, names from data stay inside their folder, and
the scripts that take a checkpoint and write a file refuse to write it over that checkpoint; the one JSON reader,
and the readers of users' JSON files that go through it."""


import os

import pytest

import convert_weights
import create_data_lists as cdl
import detect
import eval as eval_script
import export
from ssd_support.files import JSONFileError, OutputRefused, RunOutputs, read_json


def test_run_outputs_refuses_inputs_existing_files_and_escaping_names(tmp_path):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"image")
    os.link(source, tmp_path / "link.jpg")
    outputs = RunOutputs([str(source)])
    for path in (source, tmp_path / "link.jpg", tmp_path / "sub" / ".." / "a.jpg"):
        with pytest.raises(OutputRefused, match="is an input of this run") as refused:
            outputs.claim(str(path))
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    earlier = tmp_path / "earlier.txt"
    earlier.write_text("an earlier run's")
    with pytest.raises(OutputRefused, match="exists and was not written by this run"):
        outputs.claim(str(earlier))
    fresh = str(tmp_path / "fresh.txt")
    assert outputs.claim(fresh) == fresh
    open(fresh, "w").close()
    assert outputs.claim(fresh) == fresh  # written by this run: may be written again
    assert RunOutputs([str(source)], overwrite=True).claim(str(earlier)) == str(earlier)
    with pytest.raises(OutputRefused, match="is an input"):  # --overwrite never lets an input be replaced
        RunOutputs([str(source)], overwrite=True).claim(str(source))
    folder = str(tmp_path / "voc")
    assert RunOutputs.inside(folder, "sub/a.xml") == os.path.join(folder, "sub/a.xml")
    for name in ("../a.xml", "sub/../../a.xml", str(tmp_path / "abs.xml")):
        with pytest.raises(OutputRefused, match="outside"):
            RunOutputs.inside(folder, name)


def _unchanged(path, content, capsys, script):
    """The file still holds ``content`` and the script printed one error line naming it."""
    assert path.read_bytes() == content
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"{script}: error: {path}") and "is an input" in error and len(error.splitlines()) == 1


def test_scripts_refuse_their_input_checkpoint_as_output(tmp_path, capsys, toy_data_folder):
    # Named as the outputs are (.onnx, .json), so that the extension check lets the input check be reached.
    for name, script, options in (("ckpt.onnx", "export.py", [[], ["--int8", "--calibration", toy_data_folder],
                                                              ["--half"]]),  # these two export to a temporary file
                                  ("ckpt.json", "eval.py", [["--output"], ["--save-detections"],
                                                            ["--thresholds-out"]])):
        checkpoint = tmp_path / name
        content = b"a checkpoint's bytes"
        checkpoint.write_bytes(content)
        for option in options:
            if script == "export.py":
                assert export.main(["--checkpoint", str(checkpoint), "--output", str(checkpoint), *option]) == 1
            else:
                assert eval_script.main(["--data-folder", toy_data_folder, "--checkpoint", str(checkpoint), *option,
                                         str(checkpoint)]) == 1
            _unchanged(checkpoint, content, capsys, script)
    # The lists, and what create_data_lists.py writes beside them: over the manifest, every later run would refuse
    # the folder.
    for name, option in (("TEST_images.json", "--output"), ("lists_manifest.json", "--output"),
                         ("statistics.json", "--thresholds-out")):
        assert eval_script.main(["--data-folder", toy_data_folder, "--checkpoint", str(checkpoint), option,
                                 os.path.join(toy_data_folder, name)]) == 1
        assert "is an input" in capsys.readouterr().err
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(content)
    assert convert_weights.main(["--from", "torchvision_coco", "--file", str(checkpoint), "--output",
                                 str(checkpoint)]) == 1
    _unchanged(checkpoint, content, capsys, "convert_weights.py")


@pytest.mark.parametrize("script, arguments, option, extension", [
    (detect, ["photo.jpg", "--overwrite"], "--save-coco", ".json"),
    (eval_script, ["--data-folder", "lists", "--checkpoint", "ckpt.pt"], "--save-detections", ".json"),
    (eval_script, ["--data-folder", "lists", "--checkpoint", "ckpt.pt"], "--thresholds-out", ".json"),
    (eval_script, ["--data-folder", "lists", "--checkpoint", "ckpt.pt"], "--output", ".json"),
    (export, ["--checkpoint", "ckpt.pt"], "--output", ".onnx"),
    (convert_weights, ["--from", "torchvision_coco"], "--output", ".pt or .pth"),
])
def test_an_output_file_of_another_kind_is_refused_before_any_work(script, arguments, option, extension, tmp_path,
                                                                   capsys):
    """A slip such as ``--save-coco holiday.jpg`` (even with --overwrite) leaves the photo as it was: the option
    refuses, in one line naming the file, a name without its format's extension (what argparse's type= checks)."""
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(b"a user's photo")
    with pytest.raises(SystemExit) as exit_:
        script.main([*arguments, option, str(photo)])
    assert exit_.value.code == 2 and photo.read_bytes() == b"a user's photo"
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {option}: {photo}: the name must end in {extension}" in error
    folder = tmp_path / f"results{extension.split()[0]}"  # a folder with the right extension: refused now too,
    folder.mkdir()  # not by the rename at the end of the work
    with pytest.raises(SystemExit):
        script.main([*arguments, option, str(folder)])
    assert f"argument {option}: {folder}: is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("script, arguments, option", [
    (detect, ["photo.jpg"], "--output"), (detect, ["photo.jpg"], "--save-voc"), (detect, ["photo.jpg"], "--save-yolo"),
    (eval_script, ["--data-folder", "lists", "--checkpoint", "ckpt.pt"], "--plots"),
    (cdl, ["--voc07", "VOC2007"], "--output"), (cdl, [], "--toy"),
])
def test_a_folder_option_given_a_file_is_refused_before_any_work(script, arguments, option, tmp_path, capsys):
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(b"a user's photo")
    with pytest.raises(SystemExit) as exit_:
        script.main([*arguments, option, str(photo)])
    assert exit_.value.code == 2 and photo.read_bytes() == b"a user's photo"
    assert f"argument {option}: {photo}: exists and is not a folder" in capsys.readouterr().err



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
