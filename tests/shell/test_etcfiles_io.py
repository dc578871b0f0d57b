"""The privileged writer's boundary: what a daemon that is not itself any more can and cannot make it write.

``etcfiles_io.handle`` directly, and ``serve`` over a real socketpair as the
helper runs it, against files under tmp_path.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading

import pytest

from bootres.core import etcfiles, resolvconf
from bootres.shell import etcfiles_io

BLOCK = etcfiles.render_block([etcfiles.HostsEntry("198.18.0.1", ("site-router",)),
                               etcfiles.HostsEntry("198.18.0.25", ("mailhub.example.test", "mailhub"))])


@pytest.fixture
def targets(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (tmp_path / "etc" / "resolv.conf").write_text("nameserver 198.18.0.10\n")
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return etcfiles_io.Targets(hosts=str(tmp_path / "etc" / "hosts"), defaultrouter=str(tmp_path / "etc" / "defaultrouter"),
                             resolv_conf=str(tmp_path / "etc" / "resolv.conf"), saved=str(tmp_path / "state" / "orig"),
                             listen=(("127.0.0.35", 53),))


def test_what_bootres_writes_is_written(targets):
    assert etcfiles_io.handle(targets, {"op": "hosts", "path": targets.hosts, "block": BLOCK}) is True
    assert open(targets.hosts).read() == "127.0.0.1\tlocalhost\n" + BLOCK
    assert etcfiles_io.handle(targets, {"op": "defaultrouter", "path": targets.defaultrouter, "text": "198.18.0.1\n"})
    etcfiles_io.handle(targets, {"op": "resolv.conf", "action": "save"})
    text = etcfiles_io.handle(targets, {"op": "resolv.conf", "action": "write", "search": ["example.test"]})
    assert resolvconf.is_bootres(text) and "nameserver 127.0.0.35\nsearch example.test\n" in text
    assert etcfiles_io.handle(targets, {"op": "resolv.conf", "action": "leave", "nameservers": ["fe80::1%eth0"],
                                      "search": []}) == "listed"


@pytest.mark.parametrize("request_, why", [
    ({"op": "hosts", "path": "PASSWD", "block": BLOCK}, "is not the configured hosts file"),
    ({"op": "hosts", "path": "HOSTS", "block": BLOCK + "* * * * * root sh -c evil\n"}, "not a bootres block"),
    ({"op": "hosts", "path": "HOSTS", "block": BLOCK.replace("site-router", "a\nb")}, "does not appear"),
    ({"op": "hosts", "path": "HOSTS", "block": BLOCK.replace("site-router", "x #y")}, "not a host name line"),
    ({"op": "hosts", "path": "HOSTS", "block": BLOCK.replace("198.18.0.1", "evil")}, "does not appear"),
    ({"op": "defaultrouter", "path": "HOSTS", "text": "198.18.0.1\n"}, "not the configured defaultrouter"),
    ({"op": "defaultrouter", "path": "ROUTER", "text": "198.18.0.1\nALL: ALL\n"}, "not a defaultrouter file"),
    ({"op": "resolv.conf", "action": "write", "search": ["ok.test\nnameserver 203.0.113.66"]}, "not a domain name"),
    ({"op": "resolv.conf", "action": "write", "search": ["a.test"], "trust_ad": "yes"}, "not a boolean"),
    ({"op": "resolv.conf", "action": "leave", "nameservers": ["198.18.0.1\noptions evil"]}, "not a nameserver"),
    ({"op": "resolv.conf", "action": "unlink"}, "unknown resolv.conf action"),
    ({"op": "exec", "argv": ["sh"]}, "unknown operation"),
    (["not", "a", "dict"], "unknown operation"),
])
def test_anything_else_is_refused_and_nothing_is_written(targets, request_, why):
    paths = {"PASSWD": os.path.join(os.path.dirname(targets.hosts), "passwd"), "HOSTS": targets.hosts,
             "ROUTER": targets.defaultrouter}
    if isinstance(request_, dict) and request_.get("path") in paths:
        request_ = dict(request_, path=paths[request_["path"]])
    before = {name: open(path).read() for name, path in paths.items() if os.path.exists(path)}
    with pytest.raises(ValueError, match=why):
        etcfiles_io.handle(targets, request_)
    after = {name: open(path).read() for name, path in paths.items() if os.path.exists(path)}
    assert after == before and open(targets.resolv_conf).read() == "nameserver 198.18.0.10\n"


def test_a_path_the_configuration_names_after_a_reload_is_followed_once_looked_up(tmp_path, targets):
    conf = tmp_path / "bootres.conf"
    moved = tmp_path / "etc" / "hosts.moved"
    conf.write_text(f"[hosts]\nfile = {moved}\n[router]\ndefaultrouter_file =\n")
    targets.config_path = str(conf)
    assert etcfiles_io.handle(targets, {"op": "hosts", "path": str(moved), "block": BLOCK}) is True
    with pytest.raises(ValueError):  # the old path is no longer the configuration's
        etcfiles_io.handle(targets, {"op": "hosts", "path": str(tmp_path / "etc" / "hosts"), "block": BLOCK})


def test_the_helper_loop_answers_each_channel_and_survives_junk(targets, caplog):
    pairs = [socket.socketpair() for _ in range(2)]
    helper = threading.Thread(target=etcfiles_io.serve, args=([b for _, b in pairs], targets,
                                                              logging.getLogger("writer")))
    helper.start()
    files, service = (etcfiles_io.HelperWriter(a) for a, _ in pairs)
    assert files({"op": "hosts", "path": targets.hosts, "block": BLOCK}) is True
    with pytest.raises(ValueError, match="not the configured hosts file"):
        service({"op": "hosts", "path": "/etc/shadow", "block": BLOCK})
    pairs[1][0].sendall(b"{not json\n")
    assert json.loads(pairs[1][0].makefile("rb").readline())["refused"]
    targets.defaultrouter = os.path.join(os.path.dirname(targets.hosts), "gone", "defaultrouter")
    with pytest.raises(FileNotFoundError):  # a file operation that fails comes back as the OSError it was
        files({"op": "defaultrouter", "path": targets.defaultrouter, "text": "198.18.0.1\n"})
    for writer in (files, service):
        writer.close()
    helper.join(5)
    assert not helper.is_alive()  # every channel closed: the helper ends
    assert caplog.text.count("privileged writer refused a request") == 2
