"""What the RFCs say a forwarder answers, in the core with a fixed clock (issue 10's list).

Each test names the RFC and what unbound and dnsmasq do; the same points
over the wire, next to the real peers, are in
tests/net/test_resolver_conformance.py.
"""

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from bootres.core import clientwire, upstreamwire
from bootres.core.hostsdb import HostsDB, parse_hosts
from resolver_helpers import A, addresses, parsed, reply_to, responses, sends
from test_resolver import ask, make_stub

NOW = 100.0


def message(name="www.example.test", rdtype="A", qid=1, cd=False, **kw) -> dns.message.Message:
    msg = dns.message.make_query(name, rdtype, **kw)
    msg.id = qid
    if cd:
        msg.flags |= dns.flags.CD
    return msg


def answer_from(stub, send, now=NOW, **kw):
    stub.upstream_reply(send.token, reply_to(send, **kw), send.address, now)
    return responses(stub.drain())


# --- CD (RFC 4035 section 3.2.2, RFC 6840 section 5.9): forwarded, and its own cache entry


def test_cd_goes_upstream_and_keys_its_own_cache_entry():
    stub = make_stub()
    out = ask(stub, message(cd=True).to_wire(), NOW, client="cd")
    assert all(dns.message.from_wire(s.wire).flags & dns.flags.CD for s in sends(out))
    # A CD=0 question is another race: a validating upstream may refuse what CD=1 got.
    plain = ask(stub, message(qid=2).to_wire(), NOW, client="plain")
    assert len(sends(plain)) == 2 and not any(dns.message.from_wire(s.wire).flags & dns.flags.CD
                                              for s in sends(plain))
    (got,) = answer_from(stub, sends(out)[0], address="198.18.0.66")
    assert got.client == "cd" and parsed(got).flags & dns.flags.CD and addresses(got) == ["198.18.0.66"]
    assert stub.fast_answer(message(qid=3).to_wire(), "127.0.0.1", NOW + 1) is None  # not CD=1's entry
    hit = dns.message.from_wire(stub.fast_answer(message(qid=4, cd=True).to_wire(), "127.0.0.1", NOW + 1))
    assert hit.flags & dns.flags.CD and [rd.to_text() for rd in hit.answer[0]] == ["198.18.0.66"]
    (got,) = answer_from(stub, sends(plain)[0])
    assert got.client == "plain" and not parsed(got).flags & dns.flags.CD


def test_the_slow_parse_keys_cd_the_same_way():
    wire = message(cd=True, use_edns=0, options=[dns.edns.GenericOption(3, b"")]).to_wire()  # NSID: not plain
    assert clientwire.peek_query(wire) is None
    assert clientwire.parse_query(wire).key[-1] == 2
    assert clientwire.peek_query(message(cd=True, use_edns=0, want_dnssec=True).to_wire())[0][-1] == 3


# --- extended RCODEs from upstream (RFC 6891 section 6.1.3, RFC 7873 section 8)


def extended_error(send, rcode) -> bytes:
    reply = dns.message.make_response(dns.message.from_wire(send.wire))
    reply.use_edns(0, 0, 1232)
    reply.set_rcode(rcode)
    return reply.to_wire()


@pytest.mark.parametrize("rcode", [dns.rcode.BADVERS, dns.rcode.BADCOOKIE])
@pytest.mark.parametrize("edns", [-1, 0])
def test_an_upstream_badvers_or_badcookie_reaches_the_client_as_servfail(rcode, edns):
    # Was NOERROR with no records (BADVERS) and YXRRSET (BADCOOKIE): the 4 header bits.
    # The extended RCODE is about the upstream's EDNS exchange with us (hop by hop),
    # so the client, whose own EDNS was fine, gets SERVFAIL, as from unbound.
    stub = make_stub()
    out = ask(stub, message(use_edns=edns).to_wire(), NOW)
    for send in sends(out):
        stub.upstream_reply(send.token, extended_error(send, rcode), send.address, NOW + 0.001)
    (reply,) = responses(stub.drain())
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and not parsed(reply).answer
    assert reply.reason == f"every upstream answered {dns.rcode.to_text(rcode)}"
    assert stub.fast_answer(message().to_wire(), "127.0.0.1", NOW + 1) is None  # nothing cached


def test_one_upstreams_badvers_does_not_stop_anothers_answer():
    stub = make_stub()
    to_a, to_b = sends(ask(stub, message().to_wire(), NOW))
    stub.upstream_reply(to_a.token, extended_error(to_a, dns.rcode.BADVERS), A, NOW + 0.001)
    assert responses(stub.drain()) == []
    (reply,) = answer_from(stub, to_b, NOW + 0.002)
    assert parsed(reply).rcode() == dns.rcode.NOERROR and addresses(reply) == ["198.18.0.80"]


# --- error replies without a question (nsd's REFUSED to class HS, FORMERR)


def question_less(send, rcode, qid=None) -> bytes:
    qid = send.wire[:2] if qid is None else qid
    return qid + struct.pack(">HHHHH", 0x8000 | dns.flags.RD | rcode, 0, 0, 0, 0)


@pytest.mark.parametrize("rcode", [dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.SERVFAIL])
def test_an_error_reply_without_the_question_ends_the_race_at_once(rcode):
    # It used to be dropped as not matching: the client waited the 3 s timeout.
    stub = make_stub()
    out = ask(stub, message().to_wire(), NOW)
    for send in sends(out):
        stub.upstream_reply(send.token, question_less(send, rcode), send.address, NOW + 0.002)
    (reply,) = responses(stub.drain())
    msg = parsed(reply)
    assert msg.rcode() == rcode and msg.question[0].name.to_text() == "www.example.test."  # the client's question
    assert reply.reason == f"every upstream answered {dns.rcode.to_text(rcode)}"
    assert sum(u.bad_replies for u in stub.upstreams.all) == 0


def test_a_question_less_reply_still_needs_our_id_and_an_error():
    stub = make_stub()
    to_a, _ = sends(ask(stub, message().to_wire(), NOW))
    wrong_id = bytes([to_a.wire[0] ^ 0xFF, to_a.wire[1]])
    for data in (question_less(to_a, dns.rcode.REFUSED, qid=wrong_id),  # RFC 5452: the ID still counts
                 question_less(to_a, dns.rcode.NOERROR),  # says nothing: no answer without a question
                 question_less(to_a, dns.rcode.NXDOMAIN)):  # NXDOMAIN of what?
        stub.upstream_reply(to_a.token, data, A, NOW + 0.001)
    assert responses(stub.drain()) == []
    assert stub.upstreams.all[0].bad_replies == 3
    assert upstreamwire.reply_header_matches(question_less(to_a, dns.rcode.NOTIMP), to_a.wire)
    assert not upstreamwire.reply_header_matches(question_less(to_a, dns.rcode.REFUSED, qid=wrong_id), to_a.wire)


# --- classes other than IN: answered here, never forwarded


@pytest.mark.parametrize("name, rdclass", [
    ("version.bind", "CH"), ("id.server", "CH"), ("hostname.bind", "CH"), ("version.server", "CH"),
    ("www.example.test", "HS"), ("www.example.test", 42), ("www.example.test", "ANY"),
])
def test_classes_other_than_in_are_refused_here(name, rdclass):
    # unbound answers CH version.bind/id.server itself (REFUSED with hide-version
    # and hide-identity); dnsmasq answers version.bind with its own version.
    # Neither passes them on: forwarded, the upstream would tell who it is.
    stub = make_stub()
    wire = message(name, "TXT", rdclass=rdclass).to_wire()
    out = ask(stub, wire, NOW)
    assert sends(out) == []
    (reply,) = responses(out)
    msg = parsed(reply)
    assert msg.rcode() == dns.rcode.REFUSED and not msg.answer
    rdclass = dns.rdataclass.RdataClass.make(rdclass)
    assert msg.question[0].rdclass == rdclass
    assert reply.reason == f"class {dns.rdataclass.to_text(rdclass)} is not served"
    assert stub.status().refused == 1 and stub.status().malformed == 0


def test_a_hosts_name_in_another_class_is_refused_too():
    stub = make_stub()
    stub.set_hosts(HostsDB(parse_hosts("198.18.0.5 nfs1.example.test\n")))
    (reply,) = responses(ask(stub, message("nfs1.example.test", rdclass="CH").to_wire(), NOW))
    assert parsed(reply).rcode() == dns.rcode.REFUSED


# --- hosts names for other types (RFC 8020; RFC 2308 for the SOA)

HOSTS = "198.18.0.5 nfs1.example.test\n2001:db8::5 nfs1.example.test\n198.18.0.7 v4only.example.test\n"


def hosts_stub():
    stub = make_stub()
    stub.set_hosts(HostsDB(parse_hosts(HOSTS)))
    return stub


def assert_local_nodata(reply, name):
    msg = parsed(reply)
    assert reply.source == "hosts"
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    (soa,) = msg.authority
    assert soa.name == dns.name.from_text(name) and soa.rdtype == dns.rdatatype.SOA and soa.ttl == 1
    assert soa[0].mname == soa.name and soa[0].rname.to_text() == "nobody.invalid." and soa[0].minimum == 1


@pytest.mark.parametrize("rdtype", ["MX", "TXT", "HTTPS", "SRV", "CNAME", "PTR"])
def test_a_hosts_name_has_no_other_data_and_is_never_forwarded(rdtype):
    # The upstream's NXDOMAIN (or records) for a name the hosts file lists would
    # contradict its A record (RFC 8020): NODATA from here, as unbound's local-data does.
    stub = hosts_stub()
    out = ask(stub, message("NFS1.example.test", rdtype).to_wire(), NOW)
    assert sends(out) == []
    (reply,) = responses(out)
    assert_local_nodata(reply, "NFS1.example.test")  # the SOA is the name as asked


def test_a_local_nodata_for_a_missing_family_carries_the_soa_too():
    stub = hosts_stub()
    (reply,) = responses(ask(stub, message("v4only.example.test", "AAAA", use_edns=0).to_wire(), NOW))
    assert_local_nodata(reply, "v4only.example.test")
    (reply,) = responses(ask(stub, message("5.0.18.198.in-addr.arpa", "A").to_wire(), NOW))
    assert_local_nodata(reply, "5.0.18.198.in-addr.arpa")


def test_any_for_a_hosts_name_gets_every_address():
    stub = hosts_stub()
    out = ask(stub, message("nfs1.example.test", "ANY").to_wire(), NOW)
    assert sends(out) == []
    (reply,) = responses(out)
    assert sorted((r.rdtype, rd.to_text()) for r in parsed(reply).answer for rd in r) == [
        (dns.rdatatype.A, "198.18.0.5"), (dns.rdatatype.AAAA, "2001:db8::5")]


def test_names_below_a_hosts_name_are_still_forwarded():
    stub = hosts_stub()
    assert len(sends(ask(stub, message("www.nfs1.example.test", "MX").to_wire(), NOW))) == 2


# --- the UDP size cap: min(client's EDNS buffer or 512, our 1232), TC beyond (DNS flag day 2020)


def txt_answer_of_size(size, payload):
    """An upstream TXT answer whose reply to ``www.example.test`` (with our OPT if ``payload``) is ``size`` bytes."""
    name = dns.name.from_text("www.example.test.")
    fixed = 12 + len(name.to_wire()) + 4 + 2 + 10 + (11 if payload else 0)
    strings, left = [], size - fixed
    while left > 0:
        chunk = min(left, 256)
        strings.append('"' + "x" * (chunk - 1) + '"')
        left -= chunk
    upstream = dns.message.make_response(dns.message.make_query(name, "TXT"))
    upstream.answer.append(dns.rrset.from_text(name, 300, "IN", "TXT", " ".join(strings)))
    return upstreamwire.answer_from_response(upstream)


@pytest.mark.parametrize("payload, size, truncated", [
    (4096, 1232, False), (4096, 1233, True),  # dig's default buffer: held to what we advertise
    (1232, 1232, False), (1232, 1233, True),
    (1400, 1233, True),
    (512, 512, False), (512, 513, True),  # EDNS with a small buffer (and below 512 counts as 512)
    (0, 512, False), (0, 513, True),  # no EDNS: RFC 1035's 512
])
def test_udp_answers_over_the_limit_are_truncated_to_header_and_question(payload, size, truncated):
    answer = txt_answer_of_size(size, payload)
    wire = message(rdtype="TXT", use_edns=0 if payload else False, payload=payload or 512).to_wire()
    key, end, peek_payload, do = clientwire.peek_query(wire)
    whole = clientwire.render(answer, wire, wire[12:end], peek_payload, do, answer.body, True)
    assert len(whole) == size
    udp = clientwire.render(answer, wire, wire[12:end], peek_payload, do, answer.body, False)
    if not truncated:
        assert udp == whole
        return
    msg = dns.message.from_wire(udp)
    assert msg.flags & dns.flags.TC and not msg.answer and not msg.authority
    assert msg.question[0].name.to_text() == "www.example.test." and msg.edns == (0 if payload else -1)
    assert len(udp) == 12 + len(wire[12:end]) + (11 if payload else 0)


def test_a_big_cached_answer_is_truncated_over_udp_and_whole_over_tcp():
    stub = make_stub()
    many = [f"198.18.1.{i}" for i in range(1, 100)]  # 99 A records: 1,6xx bytes
    out = ask(stub, message(use_edns=0, payload=4096).to_wire(), NOW, client="udp")
    send = sends(out)[0]
    reply = dns.message.make_response(dns.message.from_wire(send.wire))
    reply.answer.append(dns.rrset.from_text_list("www.example.test.", 300, "IN", "A", many))
    stub.upstream_reply(send.token, reply.to_wire(max_size=65535), send.address, NOW)
    (udp,) = responses(stub.drain())
    assert parsed(udp).flags & dns.flags.TC and not parsed(udp).answer
    hit = dns.message.from_wire(stub.fast_answer(message(qid=2, use_edns=0, payload=4096).to_wire(), "127.0.0.1", NOW))
    assert hit.flags & dns.flags.TC and not hit.answer
    (tcp,) = responses(ask(stub, message(qid=3, use_edns=0, payload=4096).to_wire(), NOW, tcp=True))
    assert not parsed(tcp).flags & dns.flags.TC and len(parsed(tcp).answer[0]) == 99


# --- COOKIE (RFC 7873 section 5.2.2): malformed is FORMERR; a valid one is ignored


def with_cookie(data: bytes, *others, rdtype="A") -> bytes:
    options = [dns.edns.GenericOption(10, data), *others]
    return message(rdtype=rdtype, use_edns=0, options=options).to_wire()


NSID = dns.edns.GenericOption(3, b"")  # another option: the query takes the dnspython path


@pytest.mark.parametrize("length", [0, 7, 9, 15, 41, 48])
@pytest.mark.parametrize("others", [(), (NSID,)], ids=["plain", "with-nsid"])
def test_a_malformed_cookie_gets_formerr_with_an_opt(length, others):
    stub = make_stub()
    wire = with_cookie(bytes(range(length)), *others)
    assert stub.fast_answer(wire, "127.0.0.1", NOW) is None
    out = ask(stub, wire, NOW)
    assert sends(out) == []
    (reply,) = responses(out)
    msg = parsed(reply)
    assert msg.rcode() == dns.rcode.FORMERR and msg.edns == 0  # RFC 6891 section 7: FORMERR about an option has an OPT
    assert msg.question[0].name.to_text() == "www.example.test."


@pytest.mark.parametrize("length", [8, 16, 24, 40])
@pytest.mark.parametrize("others", [(), (NSID,)], ids=["plain", "with-nsid"])
def test_a_valid_cookie_is_ignored(length, others):
    # bootres has no server cookie (nor do unbound 1.17 by default and dnsmasq):
    # RFC 7873 section 5.2 says such a server ignores the option; echoing the
    # client cookie alone would be no valid reply.
    stub = make_stub()
    out = ask(stub, with_cookie(bytes(range(length)), *others), NOW)
    (reply,) = answer_from(stub, sends(out)[0])
    msg = parsed(reply)
    assert msg.rcode() == dns.rcode.NOERROR and addresses(reply) == ["198.18.0.80"]
    assert msg.edns == 0 and not msg.options
    hit = stub.fast_answer(with_cookie(bytes(range(length))), "127.0.0.1", NOW + 1)
    assert hit is not None and not dns.message.from_wire(hit).options
