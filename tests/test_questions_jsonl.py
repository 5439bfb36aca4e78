"""write_jsonl streams rows to a temporary file and renames it: all or nothing."""
import json

import pytest

from blender_scenes.questions import write_jsonl


def test_rows_round_trip(tmp_path):
    rows = [{"id": str(i), "question": "Où est le chat?"} for i in range(1000)]
    write_jsonl(tmp_path / "sub" / "q.jsonl", iter(rows))
    lines = (tmp_path / "sub" / "q.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert "Où" in lines[0]  # not escaped


def test_failure_mid_way_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "q.jsonl"
    write_jsonl(path, [{"id": "old"}])

    def rows():
        yield {"id": "new"}
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == '{"id": "old"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.jsonl"]


def test_balanced_indices_shuffles_as_random_shuffle():
    """balanced_indices shuffles with questions.shuffle; the positions must be the ones rng.shuffle gives."""
    import random

    from blender_scenes.questions import balanced_indices

    def reference(n, k, rng):
        out = []
        while len(out) < n:
            block = list(range(k))
            rng.shuffle(block)
            out.extend(block)
        return out[:n]

    for seed in range(20):
        for n, k in ((0, 9), (1, 3), (50, 9), (101, 3), (64, 2), (33, 17)):
            a, b = random.Random(seed), random.Random(seed)
            assert balanced_indices(n, k, a) == reference(n, k, b)
            assert a.random() == b.random()  # the generators are left in the same state
