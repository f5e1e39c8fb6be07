"""ssd_support/data_lists.py: the lists written as one set (issue 32): a manifest written last, which the data
loader checks, so that a kill or a full disk between two files, or a VAL split of an earlier run, is refused in one
line instead of training on one run's TRAIN with another's TEST or label map."""

import contextlib
import io
import json
import os

import pytest

from create_data_lists import create_data_lists
from datasets import PascalVOCDataset
from ssd_support import data_lists
from ssd_support.toy_data import make_toy_dataset


@pytest.fixture
def toy_voc(tmp_path):
    """A tiny toy VOC folder (4 trainval, 2 test images); returns (voc folder, lists folder)."""
    return make_toy_dataset(str(tmp_path / "toy"), n_train=4, n_test=2, seed=0), str(tmp_path / "lists")


def quietly(function, *args, **kwargs):
    """Call ``function`` with its report to stdout swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


def test_a_run_stopped_between_two_files_leaves_a_set_the_loader_refuses(toy_voc, monkeypatch):
    """The first run writes a whole set; a second run killed after its TRAIN lists (simulated: the next write
    fails) leaves TRAIN of run 2 beside TEST and the label map of run 1, which the loader refuses in one line;
    the user's other files in the folder are untouched."""
    voc, lists = toy_voc
    quietly(create_data_lists, voc07_path=voc, output_folder=lists)
    os.makedirs(lists, exist_ok=True)
    with open(os.path.join(lists, "notes.txt"), "w") as f:
        f.write("mine")
    assert len(PascalVOCDataset(lists, "TRAIN")) == 4

    real_write = data_lists._write_json

    def killed_after_train(path, data):
        if os.path.basename(path).startswith("TEST"):
            raise KeyboardInterrupt("killed")
        real_write(path, data)

    monkeypatch.setattr(data_lists, "_write_json", killed_after_train)
    with pytest.raises(KeyboardInterrupt):
        quietly(create_data_lists, voc07_path=voc, output_folder=lists, classes=["circle", "square", "triangle",
                                                                                  "star"])
    monkeypatch.setattr(data_lists, "_write_json", real_write)
    for split in ("TRAIN", "TEST"):
        with pytest.raises(ValueError) as error:
            PascalVOCDataset(lists, split)
        assert str(error.value).startswith(f"{os.path.join(lists, 'lists_manifest.json')}: the lists were being "
                                           f"written when create_data_lists.py stopped")
    assert open(os.path.join(lists, "notes.txt")).read() == "mine"
    quietly(create_data_lists, voc07_path=voc, output_folder=lists)  # run again: a whole set
    assert len(PascalVOCDataset(lists, "TEST")) == 2


def test_a_val_split_or_label_map_of_another_run_is_refused(toy_voc):
    """A VAL split drawn by an earlier run stays beside the new TRAIN when the run stops before deleting it
    (simulated: the Python function, which leaves VAL to the command line): --eval-every would score training
    images. A label map copied from another run is refused too. Lists without a manifest load as before."""
    voc, lists = toy_voc
    quietly(create_data_lists, voc07_path=voc, output_folder=lists)
    quietly(data_lists.split_validation, lists, 0.5)
    assert (len(PascalVOCDataset(lists, "TRAIN")), len(PascalVOCDataset(lists, "VAL"))) == (2, 2)

    quietly(create_data_lists, voc07_path=voc, output_folder=lists)  # TRAIN whole again, VAL still there
    with pytest.raises(ValueError) as error:
        PascalVOCDataset(lists, "VAL")
    assert str(error.value).startswith(f"{os.path.join(lists, 'VAL_images.json')}: not part of the set of lists")
    assert len(PascalVOCDataset(lists, "TRAIN")) == 4

    with open(os.path.join(lists, "label_map.json"), "w") as f:
        json.dump({"background": 0, "circle": 1, "square": 2, "triangle": 3, "cat": 4}, f)
    with pytest.raises(ValueError) as error:
        PascalVOCDataset(lists, "TEST")
    assert str(error.value).startswith(f"{os.path.join(lists, 'label_map.json')}: not the file written with the "
                                       f"other lists")
    os.remove(data_lists.manifest_path(lists))  # lists from elsewhere (or older versions): taken as they are
    assert len(PascalVOCDataset(lists, "TEST")) == 2
