"""ssd_support/files.py's rule for every writer (RunOutputs): an output that is an input is refused before any work,
a file this run did not write is not replaced without --overwrite, names from data stay inside their folder; and
the scripts that take a checkpoint and write a file refuse to write it over that checkpoint."""

import os

import pytest

import convert_weights
import eval as eval_script
import export
from ssd_support.files import OutputRefused, RunOutputs


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
    checkpoint = tmp_path / "ckpt.pt"
    content = b"a checkpoint's bytes"
    checkpoint.write_bytes(content)
    assert export.main(["--checkpoint", str(checkpoint), "--output", str(checkpoint)]) == 1
    _unchanged(checkpoint, content, capsys, "export.py")
    assert eval_script.main(["--data-folder", toy_data_folder, "--checkpoint", str(checkpoint), "--output",
                             str(checkpoint)]) == 1
    _unchanged(checkpoint, content, capsys, "eval.py")
    for option in ("--save-detections", "--thresholds-out"):
        assert eval_script.main(["--data-folder", toy_data_folder, "--checkpoint", str(checkpoint), option,
                                 str(checkpoint)]) == 1
        _unchanged(checkpoint, content, capsys, "eval.py")
    lists = os.path.join(toy_data_folder, "TEST_images.json")
    assert eval_script.main(["--data-folder", toy_data_folder, "--checkpoint", str(checkpoint), "--output",
                             lists]) == 1
    assert "is an input" in capsys.readouterr().err
    assert convert_weights.main(["--from", "torchvision_coco", "--file", str(checkpoint), "--output",
                                 str(checkpoint)]) == 1
    _unchanged(checkpoint, content, capsys, "convert_weights.py")
