import os
from pathlib import Path

import pytest
import torch
from torch import nn

from robustxai.models.wrapper import ImageClassifier
from slurm_cluster import SlurmStudy, cluster_environment
from workflow_runs import snakemake


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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A working directory in which the smoke study has run locally (shared by the workflow tests).
    ROBUSTXAI_SMOKE_RUN=<folder> runs it there instead, so a later session only reruns what changed."""
    existing = os.environ.get("ROBUSTXAI_SMOKE_RUN")
    workdir = Path(existing) if existing else tmp_path_factory.mktemp("smoke")
    snakemake(workdir)
    return workdir


@pytest.fixture(scope="session", autouse=True)
def slurm_study(request, tmp_path_factory):
    """The smoke study on the test SLURM cluster, started with the session when SLURM tests are selected
    (it runs alongside the other tests); the reason it is not running, as a string, otherwise."""
    if not any(item.path.name == "test_workflow_slurm.py" for item in request.session.items):
        yield "no SLURM test selected"
        return
    env, reason = cluster_environment()
    if env is None:
        yield reason
        return
    study = SlurmStudy(tmp_path_factory.mktemp("slurm"), env)
    yield study
    study.stop()
