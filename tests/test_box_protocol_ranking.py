"""benchmarks/box_protocol_ranking.py on a tiny results tree: both protocols from the same shards."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from robustxai.attribution.shards import AttributionShard, write_shard
from robustxai.data.splits import ImageSplit, save_split

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    path = ROOT / "benchmarks" / "box_protocol_ranking.py"
    spec = importlib.util.spec_from_file_location("box_protocol_ranking", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_box_protocol_ranking_of_a_tiny_study(tmp_path):
    boxes = np.array([[1, 1, 4, 4], [1, 1, 4, 4], [-1, -1, -1, -1]])  # the third image has no box
    save_split(ImageSplit(np.zeros((3, 8, 8, 3), np.uint8), np.zeros(3, np.int64), boxes, ["a"]),
               tmp_path / "data" / "toy" / "test.h5")
    floor = np.full((3, 8, 8), 0.5, np.float32)
    floor[:, 2:4, 2:4] = 1.0  # a block in the box on a floor: raw box IoU 9 / 64, min-max 4 / 9
    corner = np.zeros((3, 8, 8), np.float32)
    corner[:, 5:, 5:] = 1.0  # outside the box: 0 either way
    for model, shards in (("m1", ([0, 1], [2])), ("m2", ([0, 1, 2],))):
        for method, maps in (("floor", floor), ("corner", corner)):
            for k, index in enumerate(shards):
                n = len(index)
                write_shard(AttributionShard(maps[index], np.array(index), np.zeros(n), np.zeros(n), np.ones((n, 1))),
                            tmp_path / "attributions" / "toy" / "test" / model / method / f"shard-{k}.h5")
    script = load_script()
    table = script.ranking(tmp_path, None, "test", None)
    assert table.loc["floor", "box_iou none"] == pytest.approx(9 / 64)
    assert table.loc["floor", "box_iou minmax"] == pytest.approx(4 / 9)
    assert table.loc["floor", "energy_in_box none"] == pytest.approx(6.5 / 34)
    assert table.loc["floor", "energy_in_box minmax"] == pytest.approx(1.0)
    assert (table.loc["corner", [f"{m} {r}" for m in script.METRICS for r in script.RESCALES]] == 0).all()
    assert table["models"].tolist() == [2, 2]
    assert (table.loc["floor", [c for c in table if c.startswith("rank")]] == 1).all()
