import pytest
import torch
from torch import nn

from robustxai.models.wrapper import ImageClassifier


@pytest.fixture(autouse=True)
def _single_thread_and_seed():
    torch.set_num_threads(1)
    torch.manual_seed(0)


class TinyConvNet(nn.Module):
    """conv-BN-ReLU-pool-linear on 3x8x8 inputs: small enough for exact checks, has BN for AdvProp."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@pytest.fixture
def tiny_classifier():
    return ImageClassifier(TinyConvNet(), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
