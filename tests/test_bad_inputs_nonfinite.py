"""Non-finite losses and logits stop the work with a clear error (issue 24 row 5)."""
import numpy as np
import pytest
import torch

from robustxai.errors import NonFiniteError
from robustxai.models.wrapper import build_classifier
from robustxai.training.algorithms import VanillaTraining
from robustxai.training.loop import TrainingSettings, train


def test_a_diverging_training_stops_naming_the_epoch_and_step():
    torch.manual_seed(0)
    images, labels = torch.rand(64, 3, 16, 16), torch.randint(0, 2, (64,))
    model = build_classifier("cifar_vgg_tiny", 2, [0.5] * 3, [0.25] * 3)
    settings = TrainingSettings(epochs=3, batch_size=16, lr=1e5, warmup_epochs=0, translate=0, seed=0)
    with pytest.raises(NonFiniteError, match=r"^training diverged: the loss is (nan|inf) at epoch \d+, step \d+ of 4 "
                                             r"\(lr .*\); lower training.lr"):
        train(model, VanillaTraining(), settings, images, labels, images, labels, device=torch.device("cpu"))


def test_evaluation_refuses_non_finite_logits_naming_the_model(tmp_path):
    from robustxai.data.splits import ImageSplit, save_split
    from robustxai.models.checkpoint import save_checkpoint
    from robustxai.pipeline.evaluate import evaluate_model_job

    rng = np.random.default_rng(0)
    split = ImageSplit(rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8), np.arange(8) % 2,
                       np.zeros((8, 4), np.int32), ["a", "b"])
    save_split(split, tmp_path / "test.h5")
    model = build_classifier("cifar_vgg_tiny", 2, [0.5] * 3, [0.25] * 3)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.endswith("bias")).fill_(float("nan"))
    save_checkpoint(model, tmp_path / "broken.pt", "cifar_vgg_tiny", 2)
    with pytest.raises(NonFiniteError, match=r"^model 'broken' \(.*broken\.pt\): 8 of 8 test images give non-finite "
                                             r"logits \(NaN or inf\)"):
        evaluate_model_job("broken", str(tmp_path / "broken.pt"), str(tmp_path / "test.h5"), {}, {},
                           str(tmp_path / "row.json"))
    assert not (tmp_path / "row.json").exists()
