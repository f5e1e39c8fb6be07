"""The command line's inputs as files (ssd_support/input_files.py): files, folders and glob patterns, and a unique
output name for each."""

from ssd_support import input_files


def test_expand_inputs_handles_files_folders_and_globs(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.jpg", "a.PNG", "readme.txt"):
        (folder / name).write_bytes(b"x")
    files, errors = input_files.expand_inputs([str(folder), str(tmp_path / "photos" / "*.jpg"), "missing.jpg",
                                               str(tmp_path / "*.gif"), str(tmp_path)])
    assert files == [str(folder / "a.PNG"), str(folder / "b.jpg"), str(folder / "b.jpg"), "missing.jpg"]
    assert errors == [f"{tmp_path / '*.gif'}: no file matches", f"{tmp_path}: folder has no image files"]


def test_output_stem_numbers_a_clash_and_keeps_names_apart():
    used = set()
    names = [input_files.output_stem(path, used) for path in ("a/photo.jpg", "b/photo.png", "c/photo.jpg",
                                                               "photo_2.jpg", "clip.mp4")]
    # Two files of one name in different folders would overwrite each other's output: the second is numbered.
    assert names == ["photo", "photo_2", "photo_3", "photo_2_2", "clip"]
    assert used == set(names)


def test_only_regular_files_are_taken_a_fifo_is_one_error(tmp_path):
    """Issue 32: a FIFO named like an image (in a folder, matched by a pattern or named explicitly) is never handed
    to a reader, which would wait for a writer forever; named explicitly, it is one error line."""
    import os

    (tmp_path / "a.jpg").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.jpg")
    files, errors = input_files.expand_inputs([str(tmp_path), str(tmp_path / "*.jpg"), str(tmp_path / "pipe.jpg")])
    assert files == [str(tmp_path / "a.jpg")] * 2
    assert errors == [f"{tmp_path / 'pipe.jpg'}: not a regular file (a FIFO, socket or device); not read"]
