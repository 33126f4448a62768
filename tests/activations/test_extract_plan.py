"""Shard planning, rank splitting, batch alignment, progress records and the config: pure parts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vlmscope.activations.config import ExtractConfig
from vlmscope.activations.plan import ShardTask, batch_bounds, plan_shards, split_ranks
from vlmscope.activations.progress import ProgressLog, ShardRecord, load_progress
from vlmscope.errors import ConfigError


def test_plan_skips_finished_shards_and_resumes_partial_ones():
    done = {0: ShardRecord(0, 4, 4), 1: ShardRecord(1, 4, 2), 3: ShardRecord(3, 2, 0)}
    assert plan_shards(10, 4, done) == [ShardTask(1, 4, 8, 2), ShardTask(2, 8, 10, 0)]
    assert plan_shards(10, 4, {}) == [ShardTask(0, 0, 4), ShardTask(1, 4, 8), ShardTask(2, 8, 10)]


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_ranks_get_contiguous_disjoint_blocks_covering_everything(world):
    tasks = plan_shards(1000, 64, {})
    blocks = split_ranks(tasks, world)
    assert len(blocks) == world
    assert [t for b in blocks for t in b] == tasks  # contiguous, in order, each shard once
    sizes = [sum(t.size for t in b) for b in blocks]
    assert max(sizes) - min(sizes) <= 64  # balanced to within a shard


def test_batches_align_to_the_shard_start_also_when_resuming():
    assert batch_bounds(ShardTask(1, 10, 17), 3) == [(10, 13), (13, 16), (16, 17)]
    assert batch_bounds(ShardTask(1, 10, 17, resume_from=3), 3) == [(13, 16), (16, 17)]
    assert batch_bounds(ShardTask(1, 10, 17, resume_from=4), 3) == [(14, 16), (16, 17)]


def test_progress_takes_the_best_record_over_processes(tmp_path):
    a = ProgressLog(tmp_path, run_id="r1", rank=0)
    b = ProgressLog(tmp_path, run_id="r2", rank=1)
    a.record(ShardRecord(0, 4, 2, [{"sample_id": "x", "reason": "gone"}]))
    b.record(ShardRecord(0, 4, 4))
    b.record(ShardRecord(1, 4, 1))
    got = load_progress(tmp_path)
    assert got[0].rows_done == 4 and got[0].complete and got[1].rows_done == 1 and not got[1].complete


def test_config_parses_cli_strings_and_refuses_bad_values():
    c = ExtractConfig(positions="image_mean,last,image_mean", layers="8,0,4")
    assert c.positions == ("last", "image_mean") and c.layers == (0, 4, 8)
    assert ExtractConfig(positions="text_mean").positions == ("last", "text_mean")  # last always stored
    assert ExtractConfig(layers="all").resolve_layers(3) == (0, 1, 2, 3)
    with pytest.raises(ConfigError, match=r"--layers 0,9: \[9\] out of range.*0\.\.3"):
        ExtractConfig(layers="0,9").resolve_layers(3)
    for bad in ({"layers": "0,x"}, {"layers": "-1"}, {"positions": "first"}, {"batch_size": 0},
                {"dtype": "int8"}, {"shard_samples": 0}, {"on_error": "ignore"}, {"bogus": 1}):  # fmt: skip
        with pytest.raises(ValidationError):
            ExtractConfig(**bad)
