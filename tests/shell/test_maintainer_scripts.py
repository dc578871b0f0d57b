"""debian/bootres.postinst and bootres.postrm against a temporary root.

The scripts take every path under ``$DPKG_ROOT`` (as debhelper's snippets
do), so they run here on a root in tmp_path, never on this machine's /etc;
with DPKG_ROOT set they also leave NetworkManager alone. Between configure
and removal, bootres's run is simulated with its own code: the managed
and stopped resolv.conf from ``bootres.core.resolvconf``, the hosts block from
``bootres.core.etcfiles``, files written with ``fileio.atomic_write``. The
point of each test: after remove (and purge) every file is byte for byte
what it was before the package came.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bootres.core import etcfiles, resolvconf
from bootres.shell.fileio import atomic_write

REPO = Path(__file__).resolve().parents[2]
POSTINST = REPO / "debian" / "bootres.postinst"
POSTRM = REPO / "debian" / "bootres.postrm"
LISTEN = [("127.0.0.35", 53)]
STATIC = "# static\nsearch example.test\nnameserver 198.18.0.10\nnameserver 127.0.0.1\noptions rotate\nnameserver 198.18.0.11\n"
HOSTS = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
BLOCK_ENTRIES = [
    etcfiles.HostsEntry("198.18.0.2", ("host.example.test", "host")),
    etcfiles.HostsEntry("198.18.0.1", ("site-router",)),
]


def script(path: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DPKG_ROOT": str(root), "LC_ALL": "C"}
    done = subprocess.run(["sh", str(path), *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{path.name} {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.stderr == ""
    return done


def configure(root):
    script(POSTINST, root, "configure", "")


def remove(root):
    script(POSTRM, root, "remove")


def purge(root):
    script(POSTRM, root, "purge")


def make_root(tmp_path: Path, *, resolv: str | None = STATIC, hosts: bytes | None = HOSTS.encode(),
              defaultrouter: bytes | None = None) -> Path:
    """A root with what the package ships (/etc/bootres) and the host's files before it came."""
    root = tmp_path / "root"
    (root / "etc" / "bootres" / "conf.d").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "var" / "lib").mkdir(parents=True)
    if resolv is not None:
        (root / "etc" / "resolv.conf").write_text(resolv)
    if hosts is not None:
        (root / "etc" / "hosts").write_bytes(hosts)
    if defaultrouter is not None:
        (root / "etc" / "defaultrouter").write_bytes(defaultrouter)
    return root


def snapshot(root: Path) -> dict:
    """What a byte-exact comparison needs: each file's bytes and mode, or a link's target, or None."""
    found = {}
    for name in ("resolv.conf", "hosts", "defaultrouter"):
        path = root / "etc" / name
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.exists():
            found[name] = ("file", path.read_bytes(), path.stat().st_mode & 0o7777)
        else:
            found[name] = None
    return found


def bootres_runs(root: Path, *, stops_cleanly: bool = True) -> None:
    """What the daemon does to the files while it runs (and when it stops), with bootres's own code."""
    state = root / "var" / "lib" / "bootres"
    resolv, saved = root / "etc" / "resolv.conf", state / "resolv.conf.orig"
    try:
        original = resolvconf.parse(resolv.read_text())
    except OSError:
        original = resolvconf.parse("")
    if not (saved.exists() or saved.is_symlink()):  # the daemon saves once; postinst usually did
        saved.write_text("")
    if resolv.is_symlink():
        resolv.unlink()  # replaced, never written through
    atomic_write(str(resolv), resolvconf.render_managed(LISTEN, original.search, original.options))
    hosts = root / "etc" / "hosts"
    current = hosts.read_bytes().decode("utf-8", "surrogateescape") if hosts.exists() else ""
    merged = etcfiles.merge_block(current, etcfiles.render_block(BLOCK_ENTRIES))
    atomic_write(str(hosts), merged.encode("utf-8", "surrogateescape"), follow=True)  # as stubfiles_service does
    atomic_write(str(root / "etc" / "defaultrouter"), etcfiles.render_defaultrouter(["198.18.0.1"]))
    (state / "cache.db").write_bytes(b"cache")
    if stops_cleanly:
        atomic_write(str(resolv), resolvconf.render_stopped(["198.18.0.10"], original.search, original.options))


def full_cycle(root: Path, **run) -> dict:
    """configure, run, remove; returns the files as they were before."""
    before = snapshot(root)
    configure(root)
    bootres_runs(root, **run)
    assert snapshot(root) != before
    remove(root)
    return before


# --- resolv.conf


def test_static_resolv_conf_comes_back_byte_for_byte(tmp_path):
    root = make_root(tmp_path)
    os.chmod(root / "etc" / "resolv.conf", 0o640)
    before = full_cycle(root)
    assert snapshot(root) == before
    assert (root / "var" / "lib" / "bootres" / "cache.db").exists(), "remove keeps the cache"
    assert sorted(p.name for p in (root / "var" / "lib" / "bootres").iterdir()) == ["cache.db"]
    purge(root)
    assert snapshot(root) == before
    assert not (root / "var" / "lib" / "bootres").exists()


def test_killed_daemon_left_the_managed_file_and_postrm_restores_it(tmp_path):
    root = make_root(tmp_path)
    before = full_cycle(root, stops_cleanly=False)
    assert snapshot(root) == before


def test_static_resolv_conf_becomes_the_upstream_list(tmp_path):
    root = make_root(tmp_path)
    configure(root)
    upstreams = (root / "etc" / "bootres" / "upstream-resolv.conf").read_text()
    comments = [line for line in upstreams.splitlines() if line.startswith("#")]
    assert "/etc/resolv.conf" in comments[1] and "static list" in " ".join(comments)
    assert [line for line in upstreams.splitlines() if not line.startswith("#")] == [
        "search example.test", "nameserver 198.18.0.10", "options rotate", "nameserver 198.18.0.11",
    ]
    assert (root / "etc" / "bootres" / "upstream-resolv.conf").stat().st_mode & 0o777 == 0o644
    bootres_runs(root)
    remove(root)
    assert (root / "etc" / "bootres" / "upstream-resolv.conf").read_text() == upstreams, "kept on remove"
    configure(root)  # reinstall: the admin's list is theirs now
    assert (root / "etc" / "bootres" / "upstream-resolv.conf").read_text() == upstreams
    remove(root)
    purge(root)
    assert not (root / "etc" / "bootres" / "upstream-resolv.conf").exists()


@pytest.mark.parametrize("resolv", [
    "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",  # systemd-resolved's stub, as a copy
    "search example.test\n",
    "# managed by bootres: names are resolved by its local caching resolver.\nnameserver 127.0.0.35\n",
])
def test_no_upstream_list_without_a_real_nameserver(tmp_path, resolv):
    root = make_root(tmp_path, resolv=resolv)
    configure(root)
    assert not (root / "etc" / "bootres" / "upstream-resolv.conf").exists()


def test_existing_upstream_list_is_never_replaced(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "bootres" / "upstream-resolv.conf").write_text("nameserver 198.18.5.5\n")
    configure(root)
    assert (root / "etc" / "bootres" / "upstream-resolv.conf").read_text() == "nameserver 198.18.5.5\n"


def test_symlinked_resolv_conf_comes_back_as_the_link(tmp_path):
    root = make_root(tmp_path, resolv=None)
    (root / "run" / "resolvconf").mkdir()
    (root / "run" / "resolvconf" / "resolv.conf").write_text(STATIC)
    (root / "etc" / "resolv.conf").symlink_to("../run/resolvconf/resolv.conf")
    before = full_cycle(root)
    assert snapshot(root) == before
    assert (root / "run" / "resolvconf" / "resolv.conf").read_text() == STATIC, "the link's target is not ours"
    assert not (root / "etc" / "bootres" / "upstream-resolv.conf").exists(), "only a static file moves"


def test_missing_resolv_conf_is_missing_again(tmp_path):
    root = make_root(tmp_path, resolv=None)
    before = full_cycle(root)
    assert before["resolv.conf"] is None and snapshot(root) == before


def test_resolv_conf_rewritten_by_someone_else_is_left_alone(tmp_path):
    root = make_root(tmp_path)
    configure(root)
    bootres_runs(root)
    (root / "etc" / "resolv.conf").write_text("nameserver 198.18.9.9\n")  # dhclient, while bootres was stopped
    remove(root)
    assert (root / "etc" / "resolv.conf").read_text() == "nameserver 198.18.9.9\n"
    assert not (root / "var" / "lib" / "bootres" / "resolv.conf.orig").exists()


# --- /etc/defaultrouter


def test_no_defaultrouter_before_means_none_after(tmp_path):
    root = make_root(tmp_path)
    before = full_cycle(root)
    assert before["defaultrouter"] is None and snapshot(root) == before
    purge(root)
    assert not (root / "etc" / "defaultrouter").exists()


def test_existing_defaultrouter_comes_back(tmp_path):
    root = make_root(tmp_path, defaultrouter=b"198.18.7.1\n# the admin's\n")
    os.chmod(root / "etc" / "defaultrouter", 0o600)
    before = full_cycle(root)
    assert snapshot(root) == before
    purge(root)
    assert snapshot(root) == before


# --- /etc/hosts


@pytest.mark.parametrize("hosts", [
    HOSTS.encode(),
    b"127.0.0.1 localhost",  # no newline at the end
    b"127.0.0.1 localhost\r\n10.0.0.1 crlf\r\n",
    b"",
    b"\n\n",
    b"127.0.0.1 localhost\n# BEGIN bootres\nstray BEGIN without END: ordinary text",
    "127.0.0.1 localhost \xe9t\xe9 \udcff\n".encode("utf-8", "surrogateescape"),
], ids=["plain", "no-final-newline", "crlf", "empty", "blank-lines", "stray-begin", "non-utf8"])
def test_hosts_comes_back_byte_for_byte(tmp_path, hosts):
    root = make_root(tmp_path, hosts=hosts)
    os.chmod(root / "etc" / "hosts", 0o640)
    before = full_cycle(root)
    assert snapshot(root) == before


def test_missing_hosts_is_missing_again(tmp_path):
    root = make_root(tmp_path, hosts=None)
    before = full_cycle(root)
    assert before["hosts"] is None and snapshot(root) == before


def test_lines_the_admin_added_after_the_block_stay(tmp_path):
    root = make_root(tmp_path, hosts=b"127.0.0.1 localhost")
    configure(root)
    bootres_runs(root)
    with open(root / "etc" / "hosts", "ab") as hosts:
        hosts.write(b"198.18.3.3 added-later\n")
    remove(root)
    assert (root / "etc" / "hosts").read_bytes() == b"127.0.0.1 localhost\n198.18.3.3 added-later\n"


def test_symlinked_hosts_is_edited_through_the_link(tmp_path):
    root = make_root(tmp_path, hosts=None)
    (root / "etc" / "hosts.real").write_bytes(HOSTS.encode())
    (root / "etc" / "hosts").symlink_to("hosts.real")
    configure(root)
    bootres_runs(root)  # atomic_write follows the link, as the daemon's does
    remove(root)
    assert os.readlink(root / "etc" / "hosts") == "hosts.real"
    assert (root / "etc" / "hosts.real").read_bytes() == HOSTS.encode()


def test_upgrade_keeps_the_first_record(tmp_path):
    """A second configure (an upgrade) must not record bootres's own files as the originals."""
    root = make_root(tmp_path, hosts=b"127.0.0.1 localhost")
    before = snapshot(root)
    configure(root)
    bootres_runs(root, stops_cleanly=False)
    configure(root)  # upgrade: the daemon is running, its files are in place
    bootres_runs(root)
    remove(root)
    assert snapshot(root) == before


def test_purge_straight_after_install_restores_too(tmp_path):
    """dpkg runs postrm remove then purge; purge alone must still restore what is recorded."""
    root = make_root(tmp_path, hosts=b"127.0.0.1 localhost", defaultrouter=b"198.18.7.1\n")
    before = snapshot(root)
    configure(root)
    bootres_runs(root)
    purge(root)
    assert snapshot(root) == before
    assert not (root / "var" / "lib" / "bootres").exists()


HOSTS_LINES = st.sampled_from([
    "127.0.0.1\tlocalhost", "::1 ip6-localhost", "# a comment", "", "   ", "\t", "198.18.0.9 x y",
    "# BEGIN bootres", "# BEGIN bootres  ", "# END bootres", "# END bootres\r", "#BEGIN bootres",
    " # END bootres", "x\x0cy", "\r",
])


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(HOSTS_LINES, max_size=8), final_newline=st.booleans())
def test_any_hosts_file_comes_back(tmp_path_factory, lines, final_newline):
    """The shell's removal finds the block exactly as etcfiles does, whatever else the file holds."""
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    assume(etcfiles._find_block(etcfiles._lines(text)) is None)  # merge would replace a block, not add one
    stray = [line.rstrip() for line in etcfiles._lines(text)]
    # postinst tells "bootres's block is there" by grep; a stray BEGIN and a stray END is beyond it
    assume(not ("# BEGIN bootres" in stray and "# END bootres" in stray))
    root = make_root(tmp_path_factory.mktemp("hosts"), hosts=text.encode())
    before = full_cycle(root)
    assert snapshot(root) == before


PRERM = REPO / "debian" / "bootres.prerm"


def fake_process(root: Path, pid: int, mount_ns: str, resolv: str | None) -> None:
    """/proc/PID as prerm reads it: ns/mnt (a link naming the namespace) and root/etc/resolv.conf."""
    process = root / "proc" / str(pid)
    (process / "ns").mkdir(parents=True)
    os.symlink(f"mnt:[{mount_ns}]", process / "ns" / "mnt")
    if resolv is None:
        os.symlink("../..", process / "root")  # the host's own view: the same /etc/resolv.conf
    else:
        (process / "root" / "etc").mkdir(parents=True)
        (process / "root" / "etc" / "resolv.conf").write_text(resolv)


def test_prerm_counts_running_containers_that_name_the_container_address(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.35\nnameserver 169.254.0.53\n")
    fake_process(root, 1, "4026531841", None)  # init
    fake_process(root, 2, "4026531841", None)
    fake_process(root, 50, "4026532001", None)  # a service with private mounts: the host's file
    fake_process(root, 100, "4026532100", "nameserver 169.254.0.53\n")  # docker bridge
    fake_process(root, 101, "4026532100", "nameserver 169.254.0.53\n")  # the same container again
    fake_process(root, 200, "4026532200", "nameserver 198.18.105.1\nnameserver  169.254.0.53 \n")  # podman network
    fake_process(root, 300, "4026532300", "nameserver 198.18.0.10\n")  # started before bootres
    out = script(PRERM, root, "remove").stdout
    assert out.startswith("bootres: 2 running container(s) name 169.254.0.53 (bootres) as nameserver")
    assert "restart them" in out and out.count("\n") == 1
    assert script(PRERM, root, "upgrade", "0.1.0").stdout == ""  # an upgrade keeps the address answering


def test_prerm_says_nothing_without_containers(tmp_path):
    assert script(PRERM, make_root(tmp_path), "remove").stdout == ""
