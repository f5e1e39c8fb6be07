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

# A list file of image names or paths (VOC's ImageSets/Main/*.txt, Ultralytics' train.txt): COCO's train2017 is
# 118,287 lines, 4 MB; VOC 2012's trainval 11,540 lines. Read whole (ssd_support.files.read_bounded_text).
MAX_LIST_FILE_BYTES = 64 << 20

# Pixels of one image (width x height), checked from the header before any pixel is decoded. Pillow's own
# decompression-bomb threshold (Image.MAX_IMAGE_PIXELS's default, 89,478,485, about 9459 x 9459: Pillow warns
# above it and refuses above twice it); a decoded RGB image at the limit is 268 MB.
MAX_IMAGE_PIXELS = 89_478_485

# The longest side a JPEG file can have (libjpeg's JPEG_MAX_DIMENSION): detect.py's annotated copy of a wider image
# cannot be a JPEG, and libjpeg prints its own line when asked to try.
JPEG_MAX_SIDE = 65500

# Tiled detection (ssd_support.tiling, detect.py --tile, SSDDetector(tile_size=...)). The smallest crop side: the
# network sees every crop at its input side (300 or 512 pixels), so a 32-pixel crop is already upsampled ~10x (16x
# for SSD512); below that each pixel of the photo becomes a blurred block wider than the network's finest features,
# objects in it are a few pixels wide, and the number of crops grows as 1 / tile^2 (a 4-pixel tile at 0.75 overlap
# cuts a 1300 x 1000 photo into 1.3 million crops).
MIN_TILE_SIZE = 32

# Crops of one image. The largest image MAX_IMAGE_PIXELS admits (~9459 x 9459) cut into SSD300's own 300-pixel crops
# with up to half of each shared (overlap 0.5) is 63 x 63 = 3969 crops; 4096 admits it and refuses settings past it
# (overlap 0.8 on a 9000 x 9000 image: 21,316 crops). Crops are cut and run one batch at a time, so the bound is on
# time, not memory: ~0.5 s a crop for SSD300 on a CPU, 4096 crops ~35 minutes for one image.
MAX_TILES_PER_IMAGE = 4096
