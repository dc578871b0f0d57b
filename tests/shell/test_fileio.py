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


def test_symlink_is_followed_only_when_asked(tmp_path):
    """follow=True is /etc/hosts's documented exception; anywhere else the link itself is replaced."""
    real = tmp_path / "real-hosts"
    real.write_text("old\n")
    link = tmp_path / "hosts"
    link.symlink_to(real)
    atomic_write(str(link), "new\n", follow=True)
    assert link.is_symlink()
    assert real.read_text() == "new\n"
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0\n")
    os.chmod(victim, 0o600)
    planted = tmp_path / "bootres.prom"
    planted.symlink_to(victim)
    assert atomic_write(str(planted), "metrics\n") is True
    assert victim.read_text() == "root:x:0:0\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert not planted.is_symlink() and planted.read_text() == "metrics\n"
    assert stat.S_IMODE(planted.stat().st_mode) == 0o644


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_at_the_target_is_refused_without_opening_it(tmp_path, kind):
    target = tmp_path / "bootres.prom"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    with pytest.raises(OSError, match="not a regular file"):
        atomic_write(str(target), "metrics\n")  # a blocking open of a FIFO would hang here
    with pytest.raises(OSError):
        read_bytes(str(target))
    assert sorted(os.listdir(tmp_path)) == ["bootres.prom"]


def test_temporary_names_are_unpredictable_and_a_planted_one_changes_nothing(tmp_path):
    """The old fixed name (.NAME.bootres-tmp) as a symlink or a FIFO: never written through, never opened."""
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / ".hosts.bootres-tmp").symlink_to(victim)
    os.mkfifo(tmp_path / ".hosts.bootres-new")
    target = tmp_path / "hosts"
    names = set()
    for text in ("one\n", "two\n", "three\n"):
        real_open = os.open

        def spy(path, flags, mode=0o777, *, dir_fd=None):
            if ".bootres-" in os.fspath(path):
                names.add(os.path.basename(path))
                assert flags & os.O_EXCL and flags & os.O_NOFOLLOW
            return real_open(path, flags, mode, dir_fd=dir_fd)

        os.open = spy
        try:
            atomic_write(str(target), text)
        finally:
            os.open = real_open
    assert target.read_text() == "three\n" and victim.read_text() == "keep\n"
    assert len(names) == 3 and not names & {".hosts.bootres-tmp", ".hosts.bootres-new"}


def test_strays_of_a_write_cut_short_are_removed_by_the_next(tmp_path):
    target = tmp_path / "cache.db"
    (tmp_path / ".cache.db.bootres-0badcafe").write_bytes(b"x" * 100)  # a SIGKILL during a save
    (tmp_path / ".other.bootres-12345678").write_bytes(b"not ours to judge")
    atomic_write(str(target), b"new")
    assert sorted(os.listdir(tmp_path)) == [".other.bootres-12345678", "cache.db"]


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
