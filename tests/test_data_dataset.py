"""datasets.py: PascalVOCDataset items and batches, on a hand-made image and on the toy data set."""

import contextlib
import io
import json
import os
import random
import re
import shutil

import pytest
import torch
from PIL import Image, ImageDraw

import datasets
from create_data_lists import create_data_lists
from datasets import PascalVOCDataset, collate_fn, load_label_map
from ssd_support.images import UnreadableImageError
from utils import IMAGENET_MEAN, IMAGENET_STD

GREY = (90, 90, 90)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Single-threaded like a DataLoader worker; intra-op threads only add overhead on a busy small machine."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture
def known_folder(tmp_path):
    """A data folder with two train images: a 200x100 grey image holding a white object whose VOC box is
    (21, 11, 120, 60) plus a difficult one at (161, 71, 190, 95), and an image without objects; TEST holds a
    copy of the first."""
    voc = tmp_path / "VOC"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    image = Image.new("RGB", (200, 100), GREY)
    ImageDraw.Draw(image).rectangle([20, 10, 119, 59], fill=(255, 255, 255))  # pixels 20..119, 10..59
    image.save(voc / "JPEGImages" / "a.png")
    image.save(voc / "JPEGImages" / "t.png")  # the TEST image: the same pixels under its own ID
    Image.new("RGB", (150, 120), GREY).save(voc / "JPEGImages" / "b.jpg")
    objects = ("<object><name>dog</name><difficult>0</difficult><bndbox><xmin>21</xmin><ymin>11</ymin>"
               "<xmax>120</xmax><ymax>60</ymax></bndbox></object>"
               "<object><name>cat</name><difficult>1</difficult><bndbox><xmin>161</xmin><ymin>71</ymin>"
               "<xmax>190</xmax><ymax>95</ymax></bndbox></object>")
    (voc / "Annotations" / "a.xml").write_text(f"<annotation><filename>a.png</filename>{objects}</annotation>")
    (voc / "Annotations" / "t.xml").write_text(f"<annotation><filename>t.png</filename>{objects}</annotation>")
    (voc / "Annotations" / "b.xml").write_text("<annotation><filename>b.jpg</filename></annotation>")
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("a\nb\n")
    (voc / "ImageSets" / "Main" / "test.txt").write_text("t\n")  # an image in TRAIN and TEST is refused
    with contextlib.redirect_stdout(io.StringIO()):
        create_data_lists(voc07_path=str(voc), output_folder=str(tmp_path), classes=["dog", "cat"])
    return str(tmp_path)


def pixel_value(rgb):
    """The normalized value of an RGB colour."""
    return (torch.tensor(rgb) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


def test_test_item_has_the_right_fractional_boxes_and_pixels(known_folder):
    """VOC box (21, 11, 120, 60) in a 200x100 image is (0.1, 0.1, 0.6, 0.6), and the object is there in pixels."""
    dataset = PascalVOCDataset(known_folder, "test", keep_difficult=True)
    assert len(dataset) == 1
    image, boxes, labels, difficulties = dataset[0]
    assert image.shape == (3, 300, 300) and image.dtype == torch.float32
    assert torch.allclose(boxes, torch.tensor([[0.1, 0.1, 0.6, 0.6], [0.8, 0.7, 0.95, 0.95]]))
    assert labels.tolist() == [1, 2] and labels.dtype == torch.int64
    assert difficulties.tolist() == [0, 1] and difficulties.dtype == torch.uint8
    # Inside the box (in the 300x300 image) the object is white, outside it the grey background.
    assert torch.allclose(image[:, 100, 100], pixel_value((255, 255, 255)), atol=0.03)
    assert torch.allclose(image[:, 250, 100], pixel_value(GREY), atol=0.03)
    assert torch.allclose(image[:, 100, 200], pixel_value(GREY), atol=0.03)


def test_train_split_without_augmentation_is_the_test_transform(known_folder):
    """augment=False: a TRAIN item is resized and normalized only, the same every time, as in TEST."""
    test_image, test_boxes, _, _ = PascalVOCDataset(known_folder, "TEST", keep_difficult=True)[0]
    train_set = PascalVOCDataset(known_folder, "TRAIN", keep_difficult=True, augment=False)
    index = [os.path.basename(path) for path in train_set.images].index("a.png")
    for _ in range(3):
        image, boxes, _, _ = train_set[index]
        assert torch.equal(image, test_image) and torch.equal(boxes, test_boxes)
    assert PascalVOCDataset(known_folder, "TRAIN").augment and not PascalVOCDataset(known_folder, "TEST").augment


def test_train_items_come_from_the_fast_path_or_with_reference_augment_from_the_papers_chain(toy_data_folder):
    """TRAIN items are fast_augment.augment_train's output for the item's image and objects (bit for bit, so the
    default is what it always was); reference_augment=True gives utils.transform's instead. For the same seed the
    two agree: the same boxes, labels and difficulties, pixels within rounding (mean |difference| < 1 grey level)."""
    from ssd_support.fast_augment import augment_train
    from utils import transform

    fast = PascalVOCDataset(toy_data_folder, "TRAIN", keep_difficult=True)
    reference = PascalVOCDataset(toy_data_folder, "TRAIN", keep_difficult=True, reference_augment=True)
    assert not fast.reference_augment and reference.reference_augment
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    for i in range(4):
        items = {}
        for name, dataset, chain in (("fast", fast, augment_train),
                                     ("reference", reference, lambda *item: transform(*item, "TRAIN"))):
            random.seed(i)
            torch.manual_seed(i)
            items[name] = dataset[i]
            random.seed(i)
            torch.manual_seed(i)
            expected = chain(dataset.load_image(i), *dataset.load_objects(i))
            assert all(torch.equal(a, b) for a, b in zip(items[name], expected)), (name, i)
        assert all(torch.equal(a, b) for a, b in zip(items["fast"][1:], items["reference"][1:])), i
        assert ((items["fast"][0] - items["reference"][0]) * std).abs().mean() < 1, i
    # Without augmentation the keyword changes nothing: TEST items, the same with either.
    plain = PascalVOCDataset(toy_data_folder, "TRAIN", augment=False, reference_augment=True)
    assert torch.equal(plain[0][0], PascalVOCDataset(toy_data_folder, "TRAIN", augment=False)[0][0])


def test_difficult_objects_are_left_out_unless_kept(known_folder):
    """keep_difficult=False (the default) drops the difficult cat, keeps the dog."""
    _, boxes, labels, difficulties = PascalVOCDataset(known_folder, "TEST")[0]
    assert labels.tolist() == [1] and difficulties.tolist() == [0]
    assert torch.allclose(boxes, torch.tensor([[0.1, 0.1, 0.6, 0.6]]))


def test_images_without_objects_work_in_both_splits_and_in_a_batch(known_folder):
    """An image without objects gives (0, 4) boxes through the TRAIN augmentation and batches with others."""
    train = PascalVOCDataset(known_folder, "TRAIN", keep_difficult=True)
    for seed in range(20):
        random.seed(seed)
        torch.manual_seed(seed)
        image, boxes, labels, difficulties = train[1]
        assert image.shape == (3, 300, 300) and boxes.shape == (0, 4) and labels.shape == difficulties.shape == (0,)
    loader = torch.utils.data.DataLoader(train, batch_size=2, collate_fn=train.collate_fn)
    images, boxes, labels, difficulties = next(iter(loader))
    assert images.shape == (2, 3, 300, 300)
    assert [b.shape[0] for b in boxes] == [len(lab) for lab in labels] == [len(d) for d in difficulties]
    assert boxes[1].shape == (0, 4)


def test_uint8_items_normalized_a_batch_at_a_time_are_the_normalized_items(toy_data_folder):
    """normalized=False (train.py's loader): the same draws give the uint8 pixels of the normalized items, and
    train.next_batch, which normalizes them on the device, hands the step the same batch to float32 rounding."""
    import train
    from ssd_support.distributed import DistInfo

    normalized = PascalVOCDataset(toy_data_folder, "TRAIN", keep_difficult=True)
    raw = PascalVOCDataset(toy_data_folder, "TRAIN", keep_difficult=True, normalized=False)
    expected, pixels = [], []
    for i in range(4):
        for dataset, out in ((normalized, expected), (raw, pixels)):
            random.seed(i)
            torch.manual_seed(i)
            out.append(dataset[i])
    for want, got in zip(expected, pixels):
        assert got[0].dtype == torch.uint8 and got[0].shape == (3, 300, 300)
        assert torch.allclose(want[0], (got[0].float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1))
                              / torch.tensor(IMAGENET_STD).view(3, 1, 1), atol=1e-5)
        assert all(torch.equal(a, b) for a, b in zip(want[1:], got[1:]))
    run = train.TrainingRun(model=None, model_without_ddp=None, loss_fn=None, optimizer=None, scaler=None,
                            autocast=None, label_map={}, start_iteration=0, last_checkpoint=None,
                            batches=iter([collate_fn(pixels)]), n_images=4,
                            normalization={"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
                            dist_info=DistInfo(0, 1, torch.device("cpu")), checkpoint_dir="unused",
                            keep_checkpoints=0, settings={})
    images, boxes, labels = train.next_batch(run)
    assert images.dtype == torch.float32 and torch.allclose(images, collate_fn(expected)[0], atol=1e-5)
    # The network's layout on the CPU is the default one (build_model): the loader's channels-last batch is not
    # handed to it as it is (that made a CPU step slower and changed the toy quickstart's mAP).
    assert images.is_contiguous()
    assert all(torch.equal(b, item[1]) for b, item in zip(boxes, expected))
    run.batches = iter([collate_fn(expected)])  # already normalized: refused, not normalized a second time
    with pytest.raises(TypeError, match="uint8"):
        train.next_batch(run)


def test_uint8_test_items_never_hand_out_the_callers_image():
    """normalized=False: an image that is already S x S is not resized, and comes back as a copy, not the
    caller's tensor (which the caller may still write into)."""
    from utils import transform

    image = torch.randint(0, 256, (3, 300, 300), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out, boxes, _, _ = transform(image, [[0, 0, 30, 60]], [1], [0], "TEST", normalized=False)
    assert torch.equal(out, image) and out.untyped_storage().data_ptr() != image.untyped_storage().data_ptr()
    assert torch.allclose(boxes, torch.tensor([[0.0, 0.0, 0.1, 0.2]]))


def test_images_stored_pixel_by_pixel_are_stacked_channels_last_with_the_same_values():
    """stack_images: images in (S, S, 3) memory (the TRAIN path's) give a channels-last batch, others a plain one;
    the values are torch.stack's either way."""
    generator = torch.Generator().manual_seed(0)
    planar = [torch.randint(0, 256, (3, 6, 6), dtype=torch.uint8, generator=generator) for _ in range(3)]
    by_pixel = [image.permute(1, 2, 0).contiguous().permute(2, 0, 1) for image in planar]
    batch = datasets.stack_images(by_pixel)
    assert torch.equal(batch, torch.stack(planar)) and batch.is_contiguous(memory_format=torch.channels_last)
    assert datasets.stack_images(planar).is_contiguous()
    mixed = datasets.stack_images([by_pixel[0], planar[1]])
    assert torch.equal(mixed, torch.stack(planar[:2])) and mixed.is_contiguous()
    with pytest.raises(RuntimeError, match=r"\[3, 6, 6\] at entry 0 and \[3, 5, 6\] at entry 1"):
        datasets.stack_images([by_pixel[0], by_pixel[1][:, :5]])  # sizes named as the images have them


def test_collate_keeps_per_image_lists(toy_data_folder):
    """On the toy data: a TRAIN batch stacks the images and keeps one boxes/labels/difficulties tensor per image."""
    dataset = PascalVOCDataset(toy_data_folder, "TRAIN", keep_difficult=True)
    assert len(dataset) == 8 and PascalVOCDataset.collate_fn is collate_fn is datasets.collate_fn
    batch = [dataset[i] for i in range(4)]
    images, boxes, labels, difficulties = collate_fn(batch)
    assert images.shape == (4, 3, 300, 300)
    assert isinstance(boxes, list) and len(boxes) == len(labels) == len(difficulties) == 4
    for item, b, lab, d in zip(batch, boxes, labels, difficulties):
        assert torch.equal(item[1], b) and torch.equal(item[2], lab) and torch.equal(item[3], d)
        assert ((b >= 0) & (b <= 1)).all() and set(lab.tolist()) <= {1, 2, 3}
    assert load_label_map(toy_data_folder) == {"background": 0, "circle": 1, "square": 2, "triangle": 3}


def test_an_unreadable_image_is_named_in_the_error(known_folder):
    """A corrupt image file raises images.UnreadableImageError (a ValueError), one line starting with its path."""
    path = datasets.read_image_list(known_folder, "TEST")[0]
    with open(path, "wb") as f:
        f.write(b"not an image at all")
    with pytest.raises(UnreadableImageError, match=re.escape(f"{path}: not an image")) as error:
        PascalVOCDataset(known_folder, "TEST")[0]
    assert "\n" not in str(error.value)


def test_lists_survive_a_move_and_a_missing_image_is_one_line(known_folder, tmp_path):
    """The lists hold paths relative to their folder: the data folder copied elsewhere still loads; a listed
    image that is gone fails in the constructor, naming the list, how many are missing and the first."""
    with open(os.path.join(known_folder, "TRAIN_images.json")) as f:
        assert [os.path.isabs(p) for p in json.load(f)] == [False, False]
    moved = str(tmp_path / "elsewhere" / "project")
    shutil.copytree(known_folder, moved)
    shutil.rmtree(os.path.join(known_folder, "VOC"))  # the original is gone
    item = PascalVOCDataset(moved, "TEST")[0]
    assert torch.allclose(item[1], torch.tensor([[0.1, 0.1, 0.6, 0.6]]))
    os.remove(os.path.join(moved, "VOC", "JPEGImages", "b.jpg"))
    with pytest.raises(FileNotFoundError) as error:
        PascalVOCDataset(moved, "TRAIN")
    message = str(error.value)
    assert message == (f"{os.path.join(moved, 'TRAIN_images.json')}: 1 of 2 listed images not found, the first "
                       f"{os.path.join(moved, 'VOC', 'JPEGImages', 'b.jpg')} (moved? run create_data_lists.py again)")


def test_missing_lists_and_bad_split_are_clear_errors(tmp_path, known_folder):
    """Missing lists name the file and the fix; a wrong split and lists of different lengths are named too."""
    with pytest.raises(FileNotFoundError, match="TRAIN_images.json: not found .*create_data_lists.py"):
        PascalVOCDataset(str(tmp_path / "nowhere"), "TRAIN")
    with pytest.raises(ValueError, match="split must be one of TRAIN, VAL, TEST"):
        PascalVOCDataset(known_folder, "TRAINVAL")
    with pytest.raises(FileNotFoundError, match="VAL_images.json: not found"):  # a folder without --val-fraction
        PascalVOCDataset(known_folder, "VAL")
    os.remove(os.path.join(known_folder, "lists_manifest.json"))  # lists edited by hand: no longer the set written
    with open(os.path.join(known_folder, "TEST_objects.json"), "w") as f:
        json.dump([], f)
    with pytest.raises(ValueError, match="TEST_objects.json: 0 entries, but .*TEST_images.json lists 1 images"):
        PascalVOCDataset(known_folder, "TEST")


def _rewrite_objects(folder, split, change):
    """Apply ``change`` to the first entry of a split's objects list, as a list written elsewhere might be (without
    create_data_lists.py's manifest)."""
    if os.path.isfile(os.path.join(folder, "lists_manifest.json")):
        os.remove(os.path.join(folder, "lists_manifest.json"))
    path = os.path.join(folder, f"{split}_objects.json")
    with open(path) as f:
        objects = json.load(f)
    change(objects[0])
    with open(path, "w") as f:
        json.dump(objects, f)
    return path


def test_lists_written_elsewhere_with_too_many_objects_or_unknown_labels_are_refused(known_folder):
    """Issue 32: lists from another tool are checked when loaded: 1001 boxes on one image (~65 KB per object per
    training step) and a label outside label_map.json are refused in one line naming the lists file."""
    from ssd_support.limits import MAX_OBJECTS_PER_IMAGE

    n = MAX_OBJECTS_PER_IMAGE + 1
    path = _rewrite_objects(known_folder, "TEST", lambda entry: entry.update(
        boxes=[[10, 10, 50, 50]] * n, labels=[1] * n, difficulties=[0] * n))
    with pytest.raises(ValueError) as error:
        PascalVOCDataset(known_folder, "TEST")
    assert str(error.value) == (f"{path}: entry 1 has {n} objects, more than the limit of {MAX_OBJECTS_PER_IMAGE} "
                                f"per image (ssd_support.limits.MAX_OBJECTS_PER_IMAGE)")

    path = _rewrite_objects(known_folder, "TRAIN", lambda entry: entry.update(labels=[7, 2]))  # dog 1, cat 2
    with pytest.raises(ValueError) as error:
        PascalVOCDataset(known_folder, "TRAIN")
    assert str(error.value).startswith(f"{path}: entry 1 has label 7, which is not a class of the label map "
                                       f"(labels 1..2)")
    assert "\n" not in str(error.value)
