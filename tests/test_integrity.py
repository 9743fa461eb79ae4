"""Content checksums of shards, metric tables, checkpoints and resume files; ``robustxai verify``."""
import logging
import re

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from robustxai.attribution.shards import read_shard, write_shard
from robustxai.cli import main
from robustxai.integrity import CHECKSUM_KEY, CorruptFileError, read_table, table_sha256
from robustxai.models import build_classifier, load_checkpoint, save_checkpoint
from robustxai.models.checkpoint import load_payload
from robustxai.pipeline.metrics import table_metadata, write_table
from robustxai.training.algorithms import make_algorithm
from robustxai.training.loop import TrainingSettings, train
from test_shards import make_shard


CHANGED = "its content does not hash to the content_sha256 written with it"


def says_corrupt(path, reason):
    """The pattern of CorruptFileError's message for ``path`` with a reason matching ``reason``."""
    return re.escape(str(path)) + rf" is corrupt \({reason}\): delete it \(or run `robustxai verify RESULTS_DIR " \
        r"--fix`\) and rerun the workflow"


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def metric_table(n=40):
    return pd.DataFrame({"image": np.arange(n), "model": ["vgg-vanilla", None] * (n // 2),
                         "confidence": np.linspace(0, 1, n, dtype=np.float32), "degenerate": np.arange(n) % 3 == 0,
                         "score": np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n) / 3)})


@pytest.fixture
def shard_path(tmp_path):
    shard = make_shard()
    shard.extras = {"boundary_distance": np.array([0.5, 1.0, 2.0]), "boundary_success": np.array([True, False, True])}
    write_shard(shard, tmp_path / "shard-0.h5")
    return tmp_path / "shard-0.h5"


@pytest.fixture
def checkpoint_path(tmp_path):
    save_checkpoint(build_classifier("cifar_vgg_tiny", 10), tmp_path / "m.pt", "cifar_vgg_tiny", 10, meta={"seed": 1})
    return tmp_path / "m.pt"


def test_a_shard_round_trips_with_its_checksum(shard_path):
    shard = read_shard(shard_path)
    assert len(shard.attrs[CHECKSUM_KEY]) == 64
    assert shard.extras["boundary_success"].tolist() == [True, False, True]


def test_a_truncated_shard_names_its_file(shard_path):
    truncate(shard_path)
    with pytest.raises(CorruptFileError, match=says_corrupt(shard_path, "unreadable HDF5: .*")):
        read_shard(shard_path)


@pytest.mark.parametrize("dataset", ["maps", "extras/boundary_distance"])
def test_a_changed_value_in_a_shard_is_caught(shard_path, dataset):
    with h5py.File(shard_path, "r+") as f:
        f[dataset][0] = f[dataset][0] + 1  # in place: the stored checksum is left as it was
    with pytest.raises(CorruptFileError, match=says_corrupt(shard_path, CHANGED)):
        read_shard(shard_path)


def test_a_shard_written_before_checksums_is_read_unverified(shard_path):
    with h5py.File(shard_path, "r+") as f:
        del f.attrs[CHECKSUM_KEY]
        f["maps"][0] = 0
    assert CHECKSUM_KEY not in read_shard(shard_path).attrs


def test_verify_names_a_shard_whose_checksum_was_removed(tmp_path, capsys):
    results = tmp_path / "results"
    shard = results / "attributions" / "m" / "shard-0.h5"
    write_shard(make_shard(), shard)
    with h5py.File(shard, "r+") as f:
        del f.attrs[CHECKSUM_KEY]
        f["maps"][0] = 0
    with pytest.raises(SystemExit) as exit:
        main(["verify", str(results)])
    out = capsys.readouterr().out
    assert exit.value.code == 0  # results of a version before checksums stay usable
    assert f"not verifiable: {shard} (it carries no checksum: written by a version before checksums, or its " \
        "checksum was removed; regenerate it with snakemake --forcerun" in out
    assert "1 written before checksums (not verifiable)" in out


def test_a_table_round_trips_with_its_checksum_and_metadata(tmp_path):
    table = metric_table()
    write_table(table, tmp_path / "t.parquet", {"metric": "road"})
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "t.parquet"))
    assert table_metadata(tmp_path / "t.parquet") == {"metric": "road"}
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    assert table_sha256(arrow) == table_sha256(pa.concat_tables([arrow.slice(0, 7), arrow.slice(7)]))  # chunking
    assert table_sha256(arrow.slice(1)) != table_sha256(arrow.slice(0, len(arrow) - 1))


def test_a_truncated_or_changed_table_names_its_file(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(metric_table(), path, {"metric": "road"})
    arrow = pq.read_table(path)
    changed = arrow.set_column(4, "score", pa.array(np.arange(len(arrow)) / 4))  # the old checksum kept
    pq.write_table(changed, tmp_path / "changed.parquet")
    with pytest.raises(CorruptFileError, match=says_corrupt(tmp_path / "changed.parquet", CHANGED)):
        read_table(tmp_path / "changed.parquet")
    truncate(path)
    for reader in (read_table, table_metadata):
        with pytest.raises(CorruptFileError, match=says_corrupt(path, "unreadable Parquet: .*")):
            reader(path)


def test_a_truncated_or_changed_checkpoint_names_its_file(checkpoint_path, tmp_path):
    model, payload = load_checkpoint(checkpoint_path)
    assert payload["meta"] == {"seed": 1} and len(payload[CHECKSUM_KEY]) == 64
    payload["state_dict"]["normalize.mean"] += 1e-3  # saved with its old checksum
    torch.save(payload, tmp_path / "changed.pt")
    with pytest.raises(CorruptFileError, match=says_corrupt(tmp_path / "changed.pt", CHANGED)):
        load_checkpoint(tmp_path / "changed.pt")
    truncate(checkpoint_path)
    cut = "unreadable torch file: PytorchStreamReader failed reading zip archive.*"
    with pytest.raises(CorruptFileError, match=says_corrupt(checkpoint_path, cut)):
        load_checkpoint(checkpoint_path)
    with pytest.raises(FileNotFoundError):
        load_payload(tmp_path / "missing.pt")


def test_a_truncated_resume_file_is_ignored_with_a_warning_naming_it(tmp_path, caplog):
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    state = tmp_path / "m.resume"
    state.write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level(logging.WARNING):
        result = train(build_classifier("cifar_vgg_tiny", 10), make_algorithm("vanilla"),
                       TrainingSettings(epochs=1, batch_size=16), x, y, x, y, torch.device("cpu"),
                       resume_path=state, resume_key="k")
    assert len(result.history) == 1 and not state.exists()
    assert f"ignoring {state}: it is corrupt (unreadable torch file" in caplog.text


def test_verify_names_exactly_the_corrupt_files_and_fix_removes_them(tmp_path, capsys):
    results = tmp_path / "results"
    good, bad = [], []
    for name in ("a", "b"):
        write_shard(make_shard(), results / "attributions" / name / "shard-0.h5")
        write_table(metric_table(), results / "metrics" / name / "road.parquet")
        save_checkpoint(build_classifier("cifar_vgg_tiny", 10), results / "models" / f"{name}.pt", "cifar_vgg_tiny", 10)
        (good if name == "a" else bad).extend([results / "attributions" / name / "shard-0.h5",
                                               results / "metrics" / name / "road.parquet",
                                               results / "models" / f"{name}.pt"])
    for path in bad:
        truncate(path)
    (results / "models" / "c.pt.tmp").write_bytes(b"killed")
    (results / ".snakemake").mkdir()
    (results / ".snakemake" / "x.h5").write_bytes(b"not ours")  # hidden folders are skipped

    with pytest.raises(SystemExit) as exit:
        main(["verify", str(results)])
    out = capsys.readouterr().out
    assert exit.value.code == 1
    assert sorted(line.split(" ")[1] for line in out.splitlines() if line.startswith("corrupt: ")) == \
        sorted(str(p) for p in bad)
    assert f"leftover: {results / 'models' / 'c.pt.tmp'} (the temporary file of a job that was killed)" in out
    assert f"checked 7 files under {results}: 3 corrupt, 1 leftover temporary, 0 written before checksums" in out

    with pytest.raises(SystemExit) as exit:
        main(["verify", str(results), "--fix"])
    assert exit.value.code == 1
    assert capsys.readouterr().out.endswith("to regenerate them, with your usual options: snakemake --forcerun "
                                            f"{' '.join(map(str, sorted(bad)))}\n")
    assert all(p.exists() for p in good) and not any(p.exists() for p in bad)
    assert not (results / "models" / "c.pt.tmp").exists()
    with pytest.raises(SystemExit) as exit:
        main(["verify", str(results)])
    assert exit.value.code == 0 and "checked 3 files" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not a folder: give the workflow's results folder"):
        main(["verify", str(tmp_path / "missing")])


def test_verify_fix_keeps_every_file_the_workflow_did_not_write(tmp_path, capsys):
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq

    results = tmp_path / "results"
    (results / "models").mkdir(parents=True)
    foreign = {
        "attributions/mine.h5": None, "data/toy/test.h5": None,  # the second is at a split's path: judged
        "models/scripted.pt": b"PK\x03\x04 a TorchScript archive",
        "models/whole_model.pt": b"\x80\x04 a pickled nn.Module",  # at a checkpoint's path: judged, moved
        "notes.tmp": b"a user's scratch file", "exports/broken.parquet": b"PAR1 broken",
    }
    for name, data in foreign.items():
        path = results / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".h5"):
            with h5py.File(path, "w") as f:
                f["x"] = np.arange(3)
        else:
            path.write_bytes(data)
    pq.write_table(pa.table({"a": [1]}), results / "exports" / "fine.parquet")
    with pytest.raises(SystemExit):
        main(["verify", str(results), "--fix"])
    out = capsys.readouterr().out
    for name in ("attributions/mine.h5", "notes.tmp", "exports/broken.parquet", "exports/fine.parquet"):
        assert (results / name).exists(), name
        assert f"unknown: {results / name} (not " in out
    # files at the workflow's own paths that fail its checks are moved aside, never deleted
    for name in ("data/toy/test.h5", "models/scripted.pt", "models/whole_model.pt"):
        assert not (results / name).exists() and (results / ".corrupt" / name).exists(), name
        assert f"moved to {results / '.corrupt'}: {results / name}" in out
    assert "4 not written by the workflow (kept)" in out
