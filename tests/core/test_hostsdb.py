"""hostsdb: hosts files answer A, AAAA and PTR locally."""

import dns.name
import dns.rdatatype
import dns.reversename

from bootres.core.hostsdb import HostsDB, parse_hosts

HOSTS = """\
127.0.0.1   localhost
::1         localhost ip6-localhost   # comment
198.18.0.5  nfs1.example.test nfs1
198.18.0.6  NFS1.example.test
fe80::1%eth0 scoped
not-an-ip   broken
2001:db8::5 nfs1.example.test
"""


def wire(name: str) -> bytes:
    return dns.name.from_text(name).canonicalize().to_wire()


def test_parse_skips_comments_scoped_and_bad_lines():
    assert parse_hosts(HOSTS) == [
        ("127.0.0.1", ["localhost"]),
        ("::1", ["localhost", "ip6-localhost"]),
        ("198.18.0.5", ["nfs1.example.test", "nfs1"]),
        ("198.18.0.6", ["NFS1.example.test"]),
        ("2001:db8::5", ["nfs1.example.test"]),
    ]


def test_forward_lookups_are_case_insensitive_and_per_family():
    db = HostsDB(parse_hosts(HOSTS))
    assert db.lookup(wire("Nfs1.Example.Test"), dns.rdatatype.A) == ["198.18.0.5", "198.18.0.6"]
    assert db.lookup(wire("nfs1.example.test"), dns.rdatatype.AAAA) == ["2001:db8::5"]
    assert db.lookup(wire("nfs1"), dns.rdatatype.AAAA) == []  # listed, but not for IPv6: NODATA
    assert db.lookup(wire("nfs1.example.test"), dns.rdatatype.MX) is None  # other types are forwarded
    assert db.lookup(wire("unlisted.example.test"), dns.rdatatype.A) is None


def test_reverse_lookups_name_the_first_name_on_the_line():
    db = HostsDB(parse_hosts(HOSTS))
    assert db.lookup(wire(dns.reversename.from_address("198.18.0.5").to_text()), dns.rdatatype.PTR) == [
        "nfs1.example.test."]
    assert db.lookup(wire(dns.reversename.from_address("::1").to_text()), dns.rdatatype.PTR) == ["localhost."]
    assert db.lookup(wire(dns.reversename.from_address("198.18.0.99").to_text()), dns.rdatatype.PTR) is None
    assert wire("localhost") in db.names()
