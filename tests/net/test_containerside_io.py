"""The container address (issue 20) with the whole ``bootres run`` in a namespace: containers in, the LAN out.

    site (LAN: router 198.18.5.1, nsd 198.18.5.53) ── eth0 ── host ── ctr0 (bridge) ── veth ── box (a container)
                                                               bootres, lo: 169.254.0.53

The host's uplink is a veth too (as it is for a host that is itself a
container): only the default route through it keeps it off the container
side.  The site routes 169.254.0.53 to the host, as a neighbour that
learned the address (or guessed it) would.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import dns.message
import dns.rcode
import pytest

from bootres_process import BootresProcess

CONTAINER_ADDRESS = "169.254.0.53"
NAME = "name.internal.test"


class Bootres(BootresProcess):
    def __init__(self, ns, workdir, extra: str = ""):
        conf = workdir / "bootres.conf"
        hosts = workdir / "hosts"
        hosts.write_text("127.0.0.1\tlocalhost\n")
        conf.write_text(
            "[resolver]\nlisten = 127.0.0.35:53\nupstreams = 198.18.5.53\ncache_file =\n"
            f"hosts_files = {hosts}\nmanage_resolv_conf = no\n{extra}"
            f"[hosts]\nfile = {hosts}\n[router]\ndiscovery = no\ndefaultrouter_file =\n"
            f"[service]\nstate_dir = {workdir / 'state'}\n"
        )
        super().__init__(conf, ns=ns)

    def container(self) -> dict:
        return self.status().get("resolver", {}).get("container_listen") or {}


@pytest.fixture
def site(lab, tmp_path):
    host, lan, box = lab.netns("host"), lab.netns("site"), lab.netns("box")
    lab.link(host, "198.18.5.10/24", lan, "198.18.5.1/24")
    lan.run("ip", "address", "add", "198.18.5.53/24", "dev", "eth0")
    host.run("ip", "route", "add", "default", "via", "198.18.5.1")
    lab.nsd(lan, "198.18.5.53", zone="internal.test.")
    # The container network: a bridge of veths on the host, as docker0 or podman0.
    lab.container_bridge(host, box)
    # The neighbour: packets for the container address go to the host's MAC.
    lan.run("ip", "route", "add", f"{CONTAINER_ADDRESS}/32", "via", "198.18.5.10")
    bootres = Bootres(host, tmp_path)
    bootres.wait(lambda: bootres.container().get("answering") and bootres.container().get("on_lo"), 20,
                 "the container address on lo, answering")
    return host, lan, box, bootres


def ask(ns, qname: str, tcp: bool = False) -> tuple[dns.message.Message, int]:
    """The reply from the container address and its size on the wire."""
    query = dns.message.make_query(qname, "A", use_edns=0)
    wire = query.to_wire()

    def exchange() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.connect((CONTAINER_ADDRESS, 53))
            if tcp:
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                length = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))[0]
                return sock.recv(length, socket.MSG_WAITALL)
            sock.send(wire)
            return sock.recv(65535)

    data = ns.call(exchange)
    return dns.message.from_wire(data), len(data)


def test_containers_and_the_host_are_answered_the_lan_is_refused_and_counted(site):
    host, lan, box, bootres = site
    for ns in (box, host):
        for tcp in (False, True):
            reply, _ = ask(ns, NAME, tcp)
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer, (ns, tcp, reply)
    assert bootres.container()["outside"] == 0
    assert bootres.container()["container_networks"] == ["198.18.105.0/24"]
    refused = bootres.status()["resolver"]["refused"]  # the READY probe's CH question was one

    reply, size = ask(lan, f"other.{NAME}")
    query_size = len(dns.message.make_query(f"other.{NAME}", "A", use_edns=0).to_wire())
    # REFUSED, no data, and no amplification: the reply is no larger than the query.
    assert reply.rcode() == dns.rcode.REFUSED and not reply.answer, reply
    assert size <= query_size
    # Over TCP the connection is closed before it takes a slot (issue 21): nothing at all comes back.
    with pytest.raises((ConnectionError, struct.error)):
        ask(lan, f"other.{NAME}", tcp=True)
    report = bootres.status()
    assert report["resolver"]["container_listen"]["outside"] == 2
    assert report["resolver"]["refused"] == refused + 1 and report["resolver"]["tcp"]["refused"] == 1
    # The neighbour's question never reached the upstream (nothing was asked for "other.").
    assert report["resolver"]["cache"]["misses"] == 1


def test_the_address_comes_back_when_someone_removes_it_from_lo(site):
    host, _, box, bootres = site
    host.run("ip", "address", "del", f"{CONTAINER_ADDRESS}/32", "dev", "lo")
    started = time.monotonic()
    bootres.wait(lambda: CONTAINER_ADDRESS in host.run("ip", "-4", "address", "show", "dev", "lo").stdout, 2,
                 "the address back on lo")
    print(f"back on lo after {time.monotonic() - started:.3f} s")
    assert f"{CONTAINER_ADDRESS} put on lo: containers reach bootres there" in bootres.log()
    reply, _ = ask(box, NAME)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    # scope host: never picked as the source of the host's other traffic.
    assert "scope host" in host.run("ip", "-4", "address", "show", "dev", "lo").stdout.split(CONTAINER_ADDRESS)[1]


def test_allow_admits_a_listed_lan_client_on_the_container_address_too(lab, tmp_path):
    host, lan = lab.netns("host"), lab.netns("site")
    lab.link(host, "198.18.5.10/24", lan, "198.18.5.1/24")
    lan.run("ip", "address", "add", "198.18.5.53/24", "dev", "eth0")
    host.run("ip", "route", "add", "default", "via", "198.18.5.1")
    lab.nsd(lan, "198.18.5.53", zone="internal.test.")
    lan.run("ip", "route", "add", f"{CONTAINER_ADDRESS}/32", "via", "198.18.5.10")
    bootres = Bootres(host, tmp_path, extra="allow = 127.0.0.0/8 198.18.5.1/32\n")
    # Here bootres puts the address on lo itself (no socket unit), just after it starts answering: wait for both.
    bootres.wait(lambda: bootres.container().get("answering") and bootres.container().get("on_lo"), 20,
                 "the container address on lo, answering")
    reply, _ = ask(lan, NAME)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer, f"{reply}\n{bootres.status()}\n{bootres.log()}"
    assert bootres.container()["outside"] == 1  # counted as from outside, answered because allow lists it


def test_container_listen_no_binds_nothing_and_adds_nothing(lab, tmp_path):
    host = lab.netns("host")
    bootres = Bootres(host, tmp_path, extra="container_listen = no\n")
    bootres.wait(lambda: "interfaces" in json.dumps(bootres.status().get("router", {})) or bootres.status(), 20,
                 "bootres running")
    assert bootres.status()["resolver"]["container_listen"] is None
    assert CONTAINER_ADDRESS not in host.run("ip", "address").stdout
    assert ":53 " not in host.run("ss", "-lnu", "src", CONTAINER_ADDRESS).stdout
