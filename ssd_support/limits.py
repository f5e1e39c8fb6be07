"""Named bounds on what the project reads from files made elsewhere (checkpoints, ONNX files, data sets, images), so
that a broken or hostile file is refused in one line instead of costing unbounded time or memory.

What a checkpoint or an exported ONNX file may ask for: the bounds every loader checks before it builds anything.

A checkpoint's config (and an ONNX file's metadata) decides how much memory a loader allocates: the class heads
grow with ``n_classes`` (about 0.5 MB of float32 weights per class for SSD300) and the input batch with the square
of ``image_size``. A file from elsewhere is checked against these bounds, and against its own tensors, first
(``ssd_support.checkpoints.check_network_config``, ``ssd_support.onnx_detector.OnnxDetector``).

A leaf of ``ssd_support`` without torch: the ONNX runner imports it on devices that have no torch.
"""

# Classes a network may have, background included: at least one object class; at most enough for LVIS (1,203
# classes) with room to spare. A checkpoint's heads hold ~0.5 MB per class (SSD300), ~1 GB at the bound.
MIN_CLASSES = 2
MAX_CLASSES = 2000

# The networks there are (model.CONFIGS): the input sides, and the bases.
IMAGE_SIZES = (300, 512)
BASES = ("vgg16", "resnet50")

# Objects (boxes) of one image. The most crowded images of COCO hold a few hundred; a limit of 1000 leaves room for
# dense scenes (crowds, shelves) while refusing broken exports. Training matches every object
# against the 8732 priors (~65 KB per object per step), so an export that wrote 100,000 boxes on one image would
# need ~8 GB for that image alone.
MAX_OBJECTS_PER_IMAGE = 1000

# Pixels of one image (width x height), checked from the header before any pixel is decoded. Pillow's own
# decompression-bomb threshold (Image.MAX_IMAGE_PIXELS's default, 89,478,485, about 9459 x 9459: Pillow warns
# above it and refuses above twice it); a decoded RGB image at the limit is 268 MB.
MAX_IMAGE_PIXELS = 89_478_485

# The longest side a JPEG file can have (libjpeg's JPEG_MAX_DIMENSION): detect.py's annotated copy of a wider image
# cannot be a JPEG, and libjpeg prints its own line when asked to try.
JPEG_MAX_SIDE = 65500
