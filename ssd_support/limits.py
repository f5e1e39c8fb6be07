"""Named bounds on what the project reads from files made elsewhere (data sets, images), so that a broken or
hostile file is refused in one line instead of costing unbounded time or memory. Constants only; no imports.
"""

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
