"""Weights from elsewhere: torchvision's ``ssd300_vgg16`` state_dict in this repository's layer names."""

from model import SSD300_VGG16, VGG16_CONV_INDICES


def torchvision_ssd_to_ssd300_state_dict(tv_state_dict):
    """Convert the state_dict of torchvision's ``ssd300_vgg16`` into an ``SSD300`` state_dict.

    The two networks are the same layers under other names (torchvision nests VGG16's modules in
    Sequentials); this maps them by name, so weights trained with either can be used by the other.
    The priors are not part of torchvision's state_dict: the ``SSD300`` priors are kept.

    :param tv_state_dict: ``torchvision.models.detection.ssd300_vgg16(...).state_dict()``
    :return: dict of the ``SSD300`` parameters (no ``priors_cxcy``; load with ``strict=False``)
    """
    names = {f"base.{name}": f"backbone.features.{index}" for name, index in VGG16_CONV_INDICES.items()
             if index < 23}  # up to conv4_3; conv5_x sits in torchvision's first "extra" block
    names.update({"base.conv5_1": "backbone.extra.0.1", "base.conv5_2": "backbone.extra.0.3",
                  "base.conv5_3": "backbone.extra.0.5", "base.conv6": "backbone.extra.0.7.1",
                  "base.conv7": "backbone.extra.0.7.3"})
    for block, conv in enumerate(("conv8", "conv9", "conv10", "conv11"), start=1):
        names[f"aux_convs.{conv}_1"] = f"backbone.extra.{block}.0"
        names[f"aux_convs.{conv}_2"] = f"backbone.extra.{block}.2"
    for i, fmap in enumerate(SSD300_VGG16.feature_maps):
        names[f"pred_convs.loc_{fmap.name}"] = f"head.regression_head.module_list.{i}"
        names[f"pred_convs.cl_{fmap.name}"] = f"head.classification_head.module_list.{i}"

    state_dict = {}
    for ours, theirs in names.items():
        state_dict[f"{ours}.weight"] = tv_state_dict[f"{theirs}.weight"]
        state_dict[f"{ours}.bias"] = tv_state_dict[f"{theirs}.bias"]
    state_dict["rescale_factors"] = tv_state_dict["backbone.scale_weight"].view(1, -1, 1, 1)
    return state_dict
