"""benchmarks/box_protocol_ranking.py on a tiny results tree: every protocol from the same shards."""
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
    corner[:, 5:, 5:] = 1.0  # outside the box: 0 under every protocol
    signed = np.zeros((3, 8, 8), np.float32)
    signed[:, 1:4, 1:4] = -1.0  # the box, negative, but for +1 at its corner (1, 1): min-max puts the
    signed[:, 1, 1] = 1.0  # outside at 1 / 2 of the range, above the 20 % threshold
    methods = {"floor": (floor, {}), "corner": (corner, {}), "signed": (signed, {}),
               # the floor map from a method declaring signed maps: auto is abs there, not per map's minmax
               "declared": (floor, {"registered_method": "gradient", "settings": {"batch_size": 4}})}
    for model, shards in (("m1", ([0, 1], [2])), ("m2", ([0, 1, 2],))):
        for method, (maps, attrs) in methods.items():
            for k, index in enumerate(shards):
                n = len(index)
                write_shard(AttributionShard(maps[index], np.array(index), np.zeros(n), np.zeros(n), np.ones((n, 1)),
                                             attrs=attrs),
                            tmp_path / "attributions" / "toy" / "test" / model / method / f"shard-{k}.h5")
    script = load_script()
    table = script.ranking(tmp_path, None, "test", None, study="all")
    assert script.RESCALES == ("auto", "minmax", "abs", "positive", "none")
    expected = {  # (box_iou, energy_in_box) per method and protocol
        # positive floor: abs, positive and none keep the whole image and count the floor's mass
        "floor": {"auto": (4 / 9, 1.0), "minmax": (4 / 9, 1.0), "abs": (9 / 64, 6.5 / 34),
                  "positive": (9 / 64, 6.5 / 34), "none": (9 / 64, 6.5 / 34)},
        "declared": {"auto": (9 / 64, 6.5 / 34), "minmax": (4 / 9, 1.0), "abs": (9 / 64, 6.5 / 34),
                     "positive": (9 / 64, 6.5 / 34), "none": (9 / 64, 6.5 / 34)},
        # |map|: the box exactly; positive: its corner pixel (IoU 1 / 9), all the positive mass;
        # min-max: 0 outside the box is mid-grey: the whole image (9 / 64), 2 of 2 + 55 units in the box
        "signed": {"auto": (1.0, 1.0), "abs": (1.0, 1.0), "positive": (1 / 9, 1.0), "none": (1 / 9, 1.0),
                   "minmax": (9 / 64, 2 / 57)},
    }
    for method, protocols in expected.items():
        for rescale, (iou, energy) in protocols.items():
            assert table.loc[method, f"box_iou {rescale}"] == pytest.approx(iou), (method, rescale)
            assert table.loc[method, f"energy_in_box {rescale}"] == pytest.approx(energy), (method, rescale)
    assert table["auto"].to_dict() == {"floor": "per map", "corner": "per map", "signed": "per map", "declared": "abs"}
    assert (table.loc["corner", [f"{m} {r}" for m in script.METRICS for r in script.RESCALES]] == 0).all()
    assert table["models"].tolist() == [2, 2, 2, 2]
    assert table.loc["signed", "rank box_iou auto"] == 1 and table.loc["signed", "rank box_iou minmax"] == 3
    assert table.index[0] in ("floor", "signed")  # sorted by auto's energy in box (both 1.0)

    # one study's pairs only: m2 is in study B (an explainer model), so study A pools m1 alone
    import pandas as pd
    (tmp_path / "tables").mkdir()
    pd.DataFrame({"model": ["m1", "m2"], "study": ["A", "B"]}).to_csv(tmp_path / "tables" / "models.csv", index=False)
    pd.DataFrame({"method": list(methods), "study": "A"}).to_csv(tmp_path / "tables" / "methods.csv", index=False)
    assert script.ranking(tmp_path, None, "test", None)["models"].tolist() == [1, 1, 1, 1]
    assert script.ranking(tmp_path, None, "test", None, study="B")["models"].tolist() == [1, 1, 1, 1]
