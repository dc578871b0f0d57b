"""atomic_write on real files under tmp_path."""

import os
import stat
import subprocess
import sys

import pytest

from bootres.shell.fileio import atomic_write, read_bytes


def test_new_file_gets_content_and_default_mode(tmp_path):
    target = tmp_path / "hosts"
    assert atomic_write(str(target), "127.0.0.1 localhost\n") is True
    assert target.read_bytes() == b"127.0.0.1 localhost\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_new_file_with_explicit_mode(tmp_path):
    target = tmp_path / "cache.db"
    atomic_write(str(target), b"\x00\x01", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_unchanged_content_is_not_written(tmp_path):
    target = tmp_path / "hosts"
    atomic_write(str(target), "a\n")
    inode = target.stat().st_ino
    assert atomic_write(str(target), b"a\n") is False
    assert target.stat().st_ino == inode  # same file: no rename happened


def test_replacement_keeps_mode_and_owner(tmp_path):
    target = tmp_path / "hosts"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    os.chown(target, 12345, 54321)
    assert atomic_write(str(target), "new\n") is True
    info = target.stat()
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == (12345, 54321)


def test_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "hosts"
    atomic_write(str(target), "one\n")
    atomic_write(str(target), "two\n")
    assert sorted(os.listdir(tmp_path)) == ["hosts"]


def test_symlink_is_followed(tmp_path):
    real = tmp_path / "real-hosts"
    real.write_text("old\n")
    link = tmp_path / "hosts"
    link.symlink_to(real)
    atomic_write(str(link), "new\n")
    assert link.is_symlink()
    assert real.read_text() == "new\n"


def test_missing_directory_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        atomic_write(str(tmp_path / "nowhere" / "hosts"), "x\n")


def test_read_only_directory_raises_and_keeps_old_file(tmp_path):
    # Root ignores permission bits, so make the directory read-only for real:
    # a read-only bind mount needs a mount namespace; unshare does it in a child.
    target = tmp_path / "hosts"
    target.write_text("old\n")
    code = (
        "import sys\n"
        "from bootres.shell.fileio import atomic_write\n"
        "try:\n"
        f"    atomic_write({str(target)!r}, 'new\\n')\n"
        "except OSError as exc:\n"
        "    print(exc.errno); sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    script = (
        f"mount --bind {tmp_path} {tmp_path} && mount -o remount,bind,ro {tmp_path} && "
        f"{sys.executable} -c \"$CODE\""
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env={**os.environ, "CODE": code}, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "30"  # EROFS
    assert target.read_text() == "old\n"


def test_read_bytes_missing_is_none(tmp_path):
    assert read_bytes(str(tmp_path / "absent")) is None
