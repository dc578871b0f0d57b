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
    A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA
    assert db.lookup(wire("Nfs1.Example.Test"), A) == [(A, "198.18.0.5"), (A, "198.18.0.6")]
    assert db.lookup(wire("nfs1.example.test"), AAAA) == [(AAAA, "2001:db8::5")]
    assert db.lookup(wire("nfs1"), AAAA) == []  # listed, but not for IPv6: NODATA
    assert db.lookup(wire("nfs1.example.test"), dns.rdatatype.MX) == []  # a listed name has no other data
    assert db.lookup(wire("nfs1.example.test"), dns.rdatatype.ANY) == [
        (A, "198.18.0.5"), (A, "198.18.0.6"), (AAAA, "2001:db8::5")]
    assert db.lookup(wire("unlisted.example.test"), A) is None


def test_reverse_lookups_name_the_first_name_on_the_line():
    db = HostsDB(parse_hosts(HOSTS))
    PTR = dns.rdatatype.PTR
    assert db.lookup(wire(dns.reversename.from_address("198.18.0.5").to_text()), PTR) == [
        (PTR, "nfs1.example.test.")]
    assert db.lookup(wire(dns.reversename.from_address("::1").to_text()), PTR) == [(PTR, "localhost.")]
    assert db.lookup(wire(dns.reversename.from_address("::1").to_text()), dns.rdatatype.A) == []
    assert db.lookup(wire(dns.reversename.from_address("198.18.0.99").to_text()), dns.rdatatype.PTR) is None
    assert wire("localhost") in db.names()


# --- read as glibc's nss_files reads it (files-parse.c, files-hosts.c), names compared as DNS compares them

import ipaddress  # noqa: E402
import socket  # noqa: E402

import pytest  # noqa: E402

from bootres.core.hostsdb import name_key  # noqa: E402


def test_fields_split_only_on_c_blanks():
    """isspace() in glibc's locales: space, tab, VT, FF, CR; never \\x1c-\\x1f, U+0085 or U+2028."""
    assert parse_hosts("198.18.0.8 a\x1cb c\x0bd\x0ce\rf\tg\n") == [("198.18.0.8", ["a\x1cb", "c", "d", "e", "f", "g"])]
    assert parse_hosts("198.18.0.9 p.test\u2028q.test r.test\x85s.test t.test\n") == [("198.18.0.9", ["t.test"])]


def test_only_a_newline_ends_a_line():
    # glibc reads a lone CR as a blank inside the line, so the second address is an alias of the first.
    assert parse_hosts("198.18.0.12 a\r198.18.0.13 b\n198.18.0.14 crlf.test\r\n") == [
        ("198.18.0.12", ["a", "198.18.0.13", "b"]), ("198.18.0.14", ["crlf.test"])]


def test_hash_cuts_the_line_anywhere_and_nul_ends_it():
    assert parse_hosts("198.18.0.10 x#y z\n198.18.0.11 n\x00ul more\n#198.18.0.15 gone\n") == [
        ("198.18.0.10", ["x"]), ("198.18.0.11", ["n"])]


def test_a_kelvin_sign_never_becomes_an_ascii_k():
    entries = parse_hosts("198.18.0.7 \u212aey.test k\u00fcche.test xn--kche-0ra.test\n")
    assert entries == [("198.18.0.7", ["xn--kche-0ra.test"])]  # non-ASCII names are skipped
    db = HostsDB(entries + [("198.18.0.8", ["\u212aey.test"])])  # also when handed one directly
    assert db.lookup(wire("key.test"), dns.rdatatype.A) is None
    assert db.lookup(wire("XN--KCHE-0RA.test"), dns.rdatatype.A) is not None
    assert wire("key.test") not in db.names()


@pytest.mark.parametrize("name, key", [
    ("Nfs1.Example.TEST", b"\x04nfs1\x07example\x04test\x00"),
    ("nfs1.example.test.", b"\x04nfs1\x07example\x04test\x00"),
    ("under_score-\\x", b"\x0eunder_score-\\x\x00"),
    ("\u212aey.test", None), ("\u0130stanbul.test", None), ("k\u00fcche.test", None),
    ("a..b", None), (".", None), ("", None), (".a", None), ("a..", None),
    ("a" * 63, bytes([63]) + b"a" * 63 + b"\x00"), ("a" * 64, None), (".".join(["a" * 63] * 4), None),
])
def test_names_fold_ascii_case_only(name, key):
    assert name_key(name) == key


ADDRESSES = ["198.18.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1.2.3.256", "0x1.2.3.4", "::", "::1",
             "1::2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "::ffff:198.18.0.1", "::198.18.0.1", "1.2.3.4::",
             "2001:db8::0001", "2001:db8:00001::", "fe80::1%eth0", "\u0661.\u0662.\u0663.\u0664", "2001:DB8::A",
             "::ffff:1.2.3.04", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4"]


@pytest.mark.parametrize("text", ADDRESSES)
def test_an_address_is_read_exactly_when_glibcs_inet_pton_reads_it(text):
    """The C library's own inet_pton (IPv4 first, then IPv6, as files-hosts.c) is the oracle."""
    expected = None
    for family, kind in ((socket.AF_INET, ipaddress.IPv4Address), (socket.AF_INET6, ipaddress.IPv6Address)):
        try:
            expected = str(kind(socket.inet_pton(family, text)))
            break
        except (OSError, ValueError):
            continue
    entries = parse_hosts(f"{text} name.test\n")
    assert entries == ([(expected, ["name.test"])] if expected else [])
