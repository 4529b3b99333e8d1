import os

import pytest

from ladder_vae.atomic import atomic_path, remove_stale_temporaries


def test_a_successful_write_replaces_the_file(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    with atomic_path(target) as temporary:
        assert os.path.dirname(temporary) == str(tmp_path)
        with open(temporary, "w") as file:
            file.write("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["config.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "best.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".keras") as temporary:
            assert temporary.endswith(".keras")
            with open(temporary, "w") as file:
                file.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["best.keras"]


def test_stale_temporaries_are_removed_at_any_depth(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / ".best.keras.tmp-123.keras").write_text("half")
    (tmp_path / "samples" / ".samples_epoch_0001.png.tmp-9.png").write_text("half")
    (tmp_path / ".saved_model.tmp-77").mkdir()
    (tmp_path / "best.keras").write_text("whole")
    remove_stale_temporaries(str(tmp_path))
    left = sorted(
        os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs
    )
    assert left == ["best.keras"]
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "samples"]
