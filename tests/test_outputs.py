"""Output folders checked before the work; names made safe file names."""

import pytest

from focus_eval.outputs import MAX_STEM_CHARS, OutputLocationError, check_writable_dir, safe_stem


def test_a_writable_folder_is_checked_without_creating_anything(tmp_path):
    assert check_writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    (tmp_path / "here").mkdir()
    assert check_writable_dir(tmp_path / "here") == tmp_path / "here"
    assert [path.name for path in tmp_path.rglob("*")] == ["here"] and not list((tmp_path / "here").iterdir())


def test_unwritable_locations_are_named(tmp_path):
    blocker = tmp_path / "a_file"  # root may write anywhere, but never under a file
    blocker.write_text("")
    with pytest.raises(OutputLocationError, match=f"^{blocker} exists and is not a folder$"):
        check_writable_dir(blocker)
    for below in (blocker / "sub", blocker / "sub" / "deeper"):
        with pytest.raises(OutputLocationError, match=f"^cannot write into {below}: Not a directory$"):
            check_writable_dir(below)


def test_safe_stems():
    assert safe_stem("vstar/doc 7") == "vstar_doc_7" and safe_stem("..") == "question"
    long_a, long_b = "q" * 300, "q" * 299 + "x"
    assert len(safe_stem(long_a)) == MAX_STEM_CHARS and safe_stem(long_a) != safe_stem(long_b)
    assert safe_stem(long_a).startswith("q" * 80) and safe_stem(long_a) == safe_stem(long_a)
