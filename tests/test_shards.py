import h5py
import numpy as np
import pytest
import torch

from robustxai.attribution import make_method
from robustxai.attribution.base import AttributionMethod
from robustxai.attribution.shards import AttributionShard, read_shard, write_shard
from robustxai.pipeline.attribute import explain_in_batches, shard_indices


def make_shard(n=3):
    rng = np.random.default_rng(0)
    return AttributionShard(maps=rng.normal(size=(n, 4, 5)).astype(np.float32), index=np.arange(10, 10 + n),
                            target=np.array([1, 0, 2][:n]), predicted=np.array([1, 1, 2][:n]),
                            probs=rng.dirichlet(np.ones(3), n),
                            attrs={"method": "gradient", "settings": {"steps": 3}, "wall_seconds": 0.5})


def test_shard_round_trip_keeps_signed_values(tmp_path):
    shard = make_shard()
    write_shard(shard, tmp_path / "s.h5")
    back = read_shard(tmp_path / "s.h5")
    assert np.array_equal(back.maps, shard.maps) and back.maps.min() < 0  # raw signed, not rescaled
    assert back.index.tolist() == [10, 11, 12] and back.target.tolist() == [1, 0, 2]
    assert np.allclose(back.probs, shard.probs)
    assert back.attrs["settings"] == {"steps": 3} and back.attrs["method"] == "gradient"
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["maps"].chunks == (1, 4, 5) and f["maps"].compression == "gzip"
    write_shard(shard, tmp_path / "h.h5", dtype="float16")
    assert read_shard(tmp_path / "h.h5").maps.dtype == np.float16


def test_a_failed_write_leaves_no_shard(tmp_path):
    shard = make_shard()
    shard.attrs["bad"] = object()  # h5py cannot store it: the write fails half way
    with pytest.raises(TypeError):
        write_shard(shard, tmp_path / "s.h5")
    assert not (tmp_path / "s.h5").exists()


def test_shard_indices_cover_the_split_once():
    shards = [shard_indices(45, k, 20) for k in range(3)]
    assert np.array_equal(np.concatenate(shards), np.arange(45)) and len(shards[2]) == 5
    with pytest.raises(ValueError, match="shard 3 of 20 images starts past the split's 45 images: lower "
                                         "attribution.shards or attribution.images_per_shard"):
        shard_indices(45, 3, 20)


class FailsAbove(AttributionMethod):
    """Raises CUDA out-of-memory for more than ``limit`` images, like a GPU that is too small."""

    def __init__(self, limit):
        super().__init__(batch_size=64)
        self.limit, self.calls = limit, []

    def explain(self, model, images, targets):
        self.calls.append(len(images))
        if len(images) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return images.sum(1) * targets.view(-1, 1, 1)


def test_out_of_memory_halves_the_batch_and_gives_the_same_maps():
    images, targets = torch.rand(10, 3, 4, 4), torch.arange(10)
    method = FailsAbove(limit=3)
    maps = explain_in_batches(method, None, images, targets, images_per_batch=8, device=torch.device("cpu"))
    assert torch.allclose(maps, images.sum(1) * targets.view(-1, 1, 1))
    assert method.calls[:3] == [8, 4, 2] and max(method.calls[3:]) <= 2
    assert method.batch_size == 16  # the method's own batch size was halved with it, twice


def test_real_method_in_batches_equals_one_call():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
    images, targets = torch.rand(7, 3, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    method = make_method("gradient")
    together = method.explain(model, images, targets)
    assert torch.allclose(explain_in_batches(method, model, images, targets, 3, torch.device("cpu")), together)
