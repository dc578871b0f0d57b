"""The hosts block and /etc/defaultrouter as text: byte-for-byte preservation, parsing back, fuzz."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootres.core.etcfiles import (
    BEGIN,
    END,
    HostsEntry,
    current_block,
    merge_block,
    parse_block,
    parse_defaultrouter,
    render_block,
    render_defaultrouter,
    self_names,
)

ENTRIES = [
    HostsEntry("198.18.1.10", ("web1.example.com", "web1")),
    HostsEntry("198.18.1.1", ("site-router",)),
    HostsEntry("198.18.0.20", ("nfs1.example.com",)),
]
BLOCK = (
    "# BEGIN bootres\n"
    "# Managed by bootres: lines between BEGIN and END are rewritten, edits are lost.\n"
    "# See `bootres status` for where these addresses come from.\n"
    "198.18.1.10\tweb1.example.com web1\n"
    "198.18.1.1\tsite-router\n"
    "198.18.0.20\tnfs1.example.com\n"
    "# END bootres\n"
)
ADMIN_BEFORE = "127.0.0.1\tlocalhost\n# my notes  \t with odd   spacing\n\n198.18.9.9 printer\n"
ADMIN_AFTER = "\n# after the block\n198.18.9.8   scanner # trailing comment"  # no final newline


def test_render_block_golden():
    assert render_block(ENTRIES) == BLOCK


def test_block_is_appended_to_a_file_without_one():
    assert merge_block(ADMIN_BEFORE, BLOCK) == ADMIN_BEFORE + BLOCK


def test_append_to_a_file_without_final_newline_adds_only_that_newline():
    assert merge_block("127.0.0.1 localhost", BLOCK) == "127.0.0.1 localhost\n" + BLOCK


def test_empty_file_gets_just_the_block():
    assert merge_block("", BLOCK) == BLOCK


def test_lines_before_and_after_survive_byte_for_byte_across_rewrites():
    text = ADMIN_BEFORE + BLOCK + ADMIN_AFTER
    for round_ in range(3):
        block = render_block([HostsEntry(f"198.18.1.{round_}", ("site-router",))])
        text = merge_block(text, block)
        assert text == ADMIN_BEFORE + block + ADMIN_AFTER


def test_merge_is_idempotent():
    once = merge_block(ADMIN_BEFORE, BLOCK)
    assert merge_block(once, BLOCK) == once


def test_crlf_markers_are_recognised_and_the_rest_kept():
    text = "127.0.0.1 localhost\r\n" + BLOCK.replace("\n", "\r\n") + "198.18.9.9 printer\r\n"
    assert merge_block(text, BLOCK) == "127.0.0.1 localhost\r\n" + BLOCK + "198.18.9.9 printer\r\n"


def test_begin_without_end_is_left_as_text():
    text = "127.0.0.1 localhost\n# BEGIN bootres\n198.18.9.9 printer\n"
    merged = merge_block(text, BLOCK)
    assert merged == text + BLOCK
    assert merge_block(merged, BLOCK) == merged  # and the appended block is then the managed one
    assert parse_block(merged) == ENTRIES


def test_only_the_first_complete_block_is_managed():
    text = BLOCK + "middle\n" + BLOCK
    new = render_block([])
    assert merge_block(text, new) == new + "middle\n" + BLOCK


def test_form_feed_does_not_split_lines():
    text = "127.0.0.1 localhost\x0c# BEGIN bootres\n"
    assert merge_block(text, BLOCK) == text + BLOCK


def test_parse_block_reads_back_what_was_written():
    assert parse_block(ADMIN_BEFORE + BLOCK + ADMIN_AFTER) == ENTRIES


def test_parse_block_skips_what_it_cannot_read():
    text = f"{BEGIN}\n# comment\nnot-an-address name\n198.18.1.1\n::1 v6name # c\n\n198.18.1.2 a b\n{END}\n"
    assert parse_block(text) == [HostsEntry("::1", ("v6name",)), HostsEntry("198.18.1.2", ("a", "b"))]


def test_parse_block_without_block_is_empty():
    assert parse_block(ADMIN_BEFORE) == []


def test_defaultrouter_render_and_parse():
    routers = [ipaddress.IPv4Address("198.18.1.1"), ipaddress.IPv4Address("198.18.1.2")]
    text = render_defaultrouter(routers)
    assert text == "198.18.1.1\n198.18.1.2\n"
    assert parse_defaultrouter(text) == tuple(routers)
    assert render_defaultrouter([]) == ""


@pytest.mark.parametrize(
    "text, expected",
    [("", ()), ("# none\n\n", ()), ("  198.18.1.1  # the router\n", ("198.18.1.1",)),
     ("site-router\n198.18.1.2\n198.18.1.2\n", ("198.18.1.2",)), ("2001:db8::1\n", ())],
)
def test_parse_defaultrouter_tolerates_anything(text, expected):
    assert parse_defaultrouter(text) == tuple(ipaddress.IPv4Address(a) for a in expected)


# --- properties: no data lost, ever

admin_line = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
    lambda line: "\n" not in line and line.rstrip() not in (BEGIN, END)
)
admin_text = st.lists(admin_line, max_size=8).map(lambda lines: "".join(f"{line}\n" for line in lines))


@given(admin_text, admin_text, st.lists(st.tuples(st.ip_addresses(v=4), st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True))))
def test_property_outside_bytes_kept_and_entries_round_trip(before, after, pairs):
    entries = [HostsEntry(str(address), (name,)) for address, name in pairs]
    old = before + render_block([]) + after
    merged = merge_block(old, render_block(entries))
    assert merged == before + render_block(entries) + after
    assert parse_block(merged) == entries


@given(st.text(max_size=400), st.lists(st.sampled_from([BEGIN, END, "x"]), max_size=6))
def test_fuzz_merge_never_loses_text_outside_the_block(text, markers):
    text = text + "".join(f"\n{m}\n" for m in markers)
    merged = merge_block(text, BLOCK)
    # Taking our block back out gives the original with only its old block removed.
    assert BLOCK in merged
    parse_block(merged)
    parse_defaultrouter(merged)
    head, _, tail = merged.partition(BLOCK)
    original_lines = text.split("\n")
    for line in (head + tail).split("\n"):
        assert line in original_lines or line == ""


@pytest.mark.parametrize(
    "hostname, search, expected",
    [("web1", (), ("web1",)), ("web1.example.com", ("other.test",), ("web1.example.com", "web1")),
     ("web1", ("a.test", "b.test"), ("web1.a.test", "web1")), ("web1.", ("a.test.",), ("web1.a.test", "web1")),
     ("localhost", ("a.test",), ()), ("", (), ())],
)
def test_self_names_a_dotted_hostname_is_its_own_fqdn_else_the_first_search_domain_completes_it(
        hostname, search, expected):
    assert self_names(hostname, search) == expected


def test_parse_block_splits_fields_as_glibc_does_and_folds_ascii_case_only():
    text = (f"{BEGIN}\n198.18.1.1\vNFS1.Example.TEST\f alias\r\n198.18.1.2 a\x1cb\n"
            f"198.18.1.3 \u212aey.test ok.test#comment\n198.18.1.4 name\x00 hidden\n::1%lo scoped\n{END}\n")
    assert parse_block(text) == [
        HostsEntry("198.18.1.1", ("nfs1.example.test", "alias")),  # VT, FF and CR are blanks to C's isspace()
        HostsEntry("198.18.1.2", ("a\x1cb",)),  # \x1c is not: one field, as glibc reads it
        HostsEntry("198.18.1.3", ("ok.test",)),  # the Kelvin sign is never folded into "k": not a name at all
        HostsEntry("198.18.1.4", ("name",)),  # a NUL ends glibc's line
    ]


def test_current_block_is_the_block_as_it_stands():
    assert current_block(ADMIN_BEFORE + BLOCK + ADMIN_AFTER) == BLOCK
    assert current_block(ADMIN_BEFORE) is None
    assert current_block("x\r\n" + BLOCK.replace("\n", "\r\n")) == BLOCK.replace("\n", "\r\n")


@given(st.lists(st.one_of(st.sampled_from([BEGIN, END, "198.18.1.1 a", "::1 b", "# c", "1.2.3 x"]), st.text(max_size=30))))
def test_fuzz_parse_block_returns_only_well_formed_entries(lines):
    for entry in parse_block("\n".join(lines)):
        ipaddress.ip_address(entry.address)
        assert entry.names and all(name and not any(c in "# \t\v\f\r\n\x00" for c in name) for name in entry.names)
        assert all(name == name.lower() and name.isascii() for name in entry.names)
