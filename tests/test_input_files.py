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
