"""The EMA of the weights (ssd_support/ema.py) and the checkpoints that hold it."""

import math

import pytest
import torch

from ssd_support.checkpoints import load_model_from_checkpoint, network_config
from ssd_support.checkpoints import TrainingSetupError
from ssd_support.ema import ModelEMA, ema_decay_at, load_ema


def small_network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_an_update_moves_parameters_by_the_warm_up_decay_and_copies_buffers():
    model = small_network()
    ema = ModelEMA(model, decay=0.9999)
    start = {name: tensor.clone() for name, tensor in ema.module.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    model.train()(torch.randn(4, 3))  # the batch norm's running statistics change
    ema.update(model)
    d = 0.9999 * (1 - math.exp(-1 / 2000))  # the first update: the weights nearly taken over
    assert ema_decay_at(1, 0.9999) == pytest.approx(d) and ema_decay_at(10 ** 6, 0.9999) == pytest.approx(0.9999)
    averaged, current = ema.module.state_dict(), model.state_dict()
    for name in ("0.weight", "0.bias", "1.weight", "1.bias"):
        torch.testing.assert_close(averaged[name], d * start[name] + (1 - d) * current[name])
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(averaged[name], current[name]), name  # copied, not averaged
    assert not ema.module.training and ema.updates == 1


def test_the_state_survives_a_weights_only_round_trip_exactly(tmp_path):
    model = small_network()
    ema = ModelEMA(model, decay=0.9)
    for _ in range(3):
        with torch.no_grad():
            model[0].weight.mul_(1.5)
        ema.update(model)
    torch.save({"ema": ema.state_dict()}, tmp_path / "ema.pt")
    restored = ModelEMA(small_network(), decay=0.9)
    restored.load_state_dict(torch.load(tmp_path / "ema.pt", weights_only=True)["ema"])
    assert restored.updates == 3
    for _ in range(2):  # and goes on averaging exactly as the original
        ema.update(model)
        restored.update(model)
    for name, tensor in ema.module.state_dict().items():
        assert torch.equal(restored.module.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, decay=1.0)


def test_a_checkpoint_with_ema_weights_loads_them_by_default_and_says_so(tmp_path, capsys):
    from model import build_ssd

    label_map = {"background": 0, "circle": 1}
    network = build_ssd(2)
    ema = ModelEMA(network)
    with torch.no_grad():
        for parameter in ema.module.parameters():
            parameter.mul_(0.5)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": network.state_dict(), "config": network_config(network, label_map),
                "ema": ema.state_dict()}, path)
    loaded, _ = load_model_from_checkpoint(str(path))
    assert capsys.readouterr().err.strip() == f"{path}: using its EMA weights (train.py --ema, 0 updates)"
    for name, tensor in ema.module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    trained, _ = load_model_from_checkpoint(str(path), use_ema=False)
    assert capsys.readouterr().err == ""
    assert torch.equal(trained.state_dict()["base.conv1_1.weight"], network.state_dict()["base.conv1_1.weight"])


def test_resuming_ema_weights_that_are_not_finite_is_refused_naming_the_key(tmp_path):
    """--resume restored NaN EMA weights unchecked, and they went on into every checkpoint and best.pt."""
    from model import build_ssd

    network = build_ssd(2)
    ema_state = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    ema_state["pred_convs.loc_conv4_3.bias"][3] = float("nan")
    path = tmp_path / "ssd300_iter_10.pt"
    torch.save({"model": network.state_dict(), "config": network_config(network, {"background": 0, "circle": 1}),
                "ema": {"model": ema_state, "updates": 10}}, path)
    with pytest.raises(TrainingSetupError, match=r"ssd300_iter_10.pt: ema model pred_convs.loc_conv4_3.bias holds 1 "
                                                 r"of 16 values that are not finite"):
        load_ema(None, str(path))  # refused before anything is loaded
