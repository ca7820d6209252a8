"""Artifact I/O checks made before any work."""

from __future__ import annotations

import pytest

from stratos.artifacts import check_writable
from stratos.errors import UserError


def test_output_roots_are_checked_without_writing(tmp_path):
    check_writable("paths.output_root", str(tmp_path / "new" / "deeper"))
    assert not (tmp_path / "new").exists()  # nothing made
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match=r"invalid value for 'paths.output_root': .* runs through the file"):
        check_writable("paths.output_root", str(f / "sub"))
    check_writable("paths.cache", "memory://bucket/cache")  # an installed fsspec filesystem


def test_a_url_whose_filesystem_is_not_installed_is_one_line():
    # s3fs is not a dependency: s3:// cannot be written from here
    try:
        import s3fs  # noqa: F401

        pytest.skip("s3fs is installed here, so s3:// URLs are writable in principle")
    except ImportError:
        pass
    with pytest.raises(UserError, match=r"invalid value for 'paths.cache': 's3://b/c' \("):
        check_writable("paths.cache", "s3://b/c")
