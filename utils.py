"""SSD300 helpers: box math, the MultiBoxLoss, the paper's augmentations and the VOC mAP.

The file is organised in sections, in the order a reader meets them:

1. Box math      -- the coordinate systems SSD moves between (boundary, centre-size, offsets).
2. MultiBoxLoss  -- matching priors to objects, hard negative mining, the loss of the paper.
3. Augmentations -- the photometric / expand (zoom out) / crop / flip chain of the Caffe recipe.
4. Evaluation    -- the Pascal VOC average precision, exactly as the devkit computes it.
"""

import torch


# =====================================================================================
# 1. Box math
# =====================================================================================


# =====================================================================================
# 2. MultiBoxLoss
# =====================================================================================


# =====================================================================================
# 3. Augmentations
# =====================================================================================


# =====================================================================================
# 4. Evaluation
# =====================================================================================
