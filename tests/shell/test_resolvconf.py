"""Managed resolv.conf on real files under tmp_path."""

from __future__ import annotations

import logging
import os

import pytest

from bootres.shell.resolvconf import ManagedResolvConf

LISTEN = [("127.0.0.35", 53)]
ORIGINAL = "search example.test\nnameserver 198.18.0.10\nnameserver 198.18.0.11\n"


@pytest.fixture
def files(tmp_path):
    path, saved = tmp_path / "etc" / "resolv.conf", tmp_path / "state" / "resolv.conf.orig"
    path.parent.mkdir()
    return path, saved


def manager(files):
    path, saved = files
    return ManagedResolvConf(logging.getLogger("test"), str(path), str(saved))


def test_take_over_and_restore(files):
    path, saved = files
    path.write_text(ORIGINAL)
    os.chmod(path, 0o640)
    resolv = manager(files)
    assert resolv.original_nameservers(own=["127.0.0.35"]) == ["198.18.0.10", "198.18.0.11"]
    resolv.take_over(LISTEN)
    managed = path.read_text()
    assert "nameserver 127.0.0.35\n" in managed and "search example.test\n" in managed
    assert "198.18.0.10" not in managed
    assert saved.read_text() == ORIGINAL
    resolv.restore()
    assert path.read_text() == ORIGINAL
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert not saved.exists()


def test_crash_leftover_keeps_the_first_saved_original(files):
    path, saved = files
    path.write_text(ORIGINAL)
    manager(files).take_over(LISTEN)  # then "killed": no restore
    again = manager(files)
    assert again.original_nameservers(own=["127.0.0.35"]) == ["198.18.0.10", "198.18.0.11"]
    again.take_over(LISTEN)
    assert saved.read_text() == ORIGINAL
    again.restore()
    assert path.read_text() == ORIGINAL


def test_symlink_is_replaced_and_restored_as_a_link(files, tmp_path):
    path, saved = files
    target = tmp_path / "run-resolv.conf"
    target.write_text(ORIGINAL)
    path.symlink_to(target)
    resolv = manager(files)
    resolv.take_over(LISTEN)
    assert not path.is_symlink() and "127.0.0.35" in path.read_text()
    assert target.read_text() == ORIGINAL  # the other program's file is untouched
    resolv.restore()
    assert path.is_symlink() and os.readlink(path) == str(target)


def test_a_file_changed_by_someone_else_is_left_alone(files):
    path, saved = files
    path.write_text(ORIGINAL)
    resolv = manager(files)
    resolv.take_over(LISTEN)
    path.write_text("nameserver 198.18.0.99\n")
    resolv.restore()
    assert path.read_text() == "nameserver 198.18.0.99\n"
    assert not saved.exists()

