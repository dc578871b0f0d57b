"""Configuration: defaults, every kind of mistake as PATH:LINE, conf.d, and `bootres check`."""

import ipaddress
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootres import config
from bootres.config import ConfigError, Endpoint
from bootres.shell import cli

DATA = Path(__file__).parent / "data" / "config"
SHIPPED = Path(__file__).parent.parent / "conf" / "bootres.conf"


def write(tmp_path, text, name="bootres.conf"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def problems_of(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    return [str(p) for p in caught.value.problems]


def test_empty_file_gives_the_documented_defaults(tmp_path):
    cfg = config.load(write(tmp_path, ""))
    assert cfg.resolver.listen == (Endpoint(ipaddress.ip_address("127.0.0.35"), 53),)
    assert cfg.resolver.upstreams == () and cfg.resolver.upstream_domains == ()
    assert cfg.resolver.manage_resolv_conf is True  # installed means in the path
    assert cfg.resolver.container_listen == Endpoint(ipaddress.ip_address("169.254.0.53"), 53)
    assert cfg.resolver.endpoints == (*cfg.resolver.listen, cfg.resolver.container_listen)
    assert cfg.resolver.upstreams_file == "/etc/bootres/upstream-resolv.conf"
    assert cfg.resolver.strategy == "hedge"
    assert cfg.resolver.hedge_delay is None
    assert cfg.resolver.timeout == 3.0
    assert cfg.resolver.stale_max_age == 3 * 86400
    assert cfg.resolver.stale_answer_after == pytest.approx(0.4)
    assert cfg.resolver.boot_stale_after == pytest.approx(0.02)
    assert cfg.resolver.prefetch is True and cfg.resolver.prefetch_rate == 100
    assert cfg.resolver.cache_file == "/var/lib/bootres/cache/cache.db"
    assert cfg.resolver.allow == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert cfg.hosts.file == "/etc/hosts" and cfg.hosts.self_entry is True
    assert cfg.router.discovery and cfg.router.solicit and cfg.router.install_route
    assert cfg.router.interfaces == () and cfg.router.static == ()
    assert cfg.service.state_dir == "/run/bootres" and cfg.service.metrics_file is None


def test_shipped_file_documents_every_key_with_its_default():
    text = SHIPPED.read_text()
    documented = {}
    section = None
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        match = re.match(r"^#(\w+) = ?(.*)$", line)
        if match:
            documented[(section, match.group(1))] = match.group(2)
    expected = {(s, k): key.default for s, keys in config.SCHEMA.items() for k, key in keys.items()}
    assert documented == expected
    # Uncommenting every documented line must give a valid configuration too.
    uncommented = re.sub(r"^#(\w+ = )", r"\1", text, flags=re.M)
    config.parse([("bootres.conf", uncommented)])


def test_good_example_parses_every_kind_of_value():
    cfg = config.load(str(DATA / "good.conf"))
    assert [str(e) for e in cfg.resolver.listen] == ["127.0.0.35:53", "[::1]:53"]
    assert [str(e) for e in cfg.resolver.upstreams] == ["198.18.0.10:53", "198.18.0.11:5353", "[2001:db8::1]:53"]
    assert cfg.resolver.strategy == "race" and cfg.resolver.hedge_delay == pytest.approx(0.025)
    assert cfg.resolver.cache_file is None  # empty value: none
    assert cfg.hosts.router_names == ("site-router", "gw")
    assert cfg.router.static == (ipaddress.IPv4Address("198.18.1.1"),)
    assert cfg.router.interfaces == ("eth0", "eth1")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("400ms", 0.4), ("3s", 3.0), ("5m", 300.0), ("2h", 7200.0), ("3d", 259200.0), ("1.5", 1.5), ("2S", 2.0),
    ],
)
def test_durations(text, expected):
    assert config.parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("198.18.0.10", "198.18.0.10:53"),
        ("198.18.0.11:5353", "198.18.0.11:5353"),
        ("2001:db8::1", "[2001:db8::1]:53"),
        ("[2001:db8::1]:5353", "[2001:db8::1]:5353"),
        ("[2001:db8::1]", "[2001:db8::1]:53"),
    ],
)
def test_endpoints(text, expected):
    assert str(config.parse_endpoint(text)) == expected


# Each kind of mistake, with the exact line it must be reported on.
MISTAKES = [
    ("[resolver]\nupstreams = ns1.example.com\n", 2, "bad address 'ns1.example.com'"),
    ("[resolver]\nupstreams = 198.18.0.10:99999\n", 2, "bad port"),
    ("[resolver]\nupstreams = [2001:db8::1\n", 2, "bad address"),
    ("[resolver]\nallow = 10.0.0.0/33\n", 2, "bad network"),
    ("[resolver]\ntimeout = 3 seconds\n", 2, "bad duration"),
    ("[resolver]\nstale_max_age = -1d\n", 2, "bad duration"),
    ("[resolver]\ncache_size = lots\n", 2, "expected a whole number"),
    ("[resolver]\nmax_inflight = 0\n", 2, "out of range"),
    ("[resolver]\nprefetch_rate = 0\n", 2, "out of range"),
    ("[resolver]\nserve_stale = perhaps\n", 2, "expected yes or no"),
    ("[resolver]\nstrategy = fastest\n", 2, "strategy must be race or hedge"),
    ("[resolver]\ncache_file = var/cache.db\n", 2, "path must be absolute"),
    ("[resolver]\nlisten =\n", 2, "at least one address"),
    ("[resolver]\nupstreams = corp..example=198.18.5.53\n", 2, "bad domain 'corp..example'"),
    ("[resolver]\nupstreams = 198.18.0.10\n  =198.18.5.53\n", 2, "bad domain ''"),
    ("[resolver]\nupstreams = corp.example=ns1.corp.example\n", 2, "bad address 'ns1.corp.example'"),
    ("[resolver]\nupstreams = corp.example=[2001:db8::1]:0\n", 2, "bad port"),
    ("[resolver]\ntimeout = 300ms\n", 2, "stale_answer_after: must be shorter than timeout"),
    ("[resolver]\nboot_stale_after = 1s\n", 2, "boot_stale_after: must not be longer than stale_answer_after"),
    ("[resolver]\ntimeout = 2s\n\ntimeout = 3s\n", 4, "duplicate key 'timeout' in [resolver] (first on line 2)"),
    ("[resolvers]\ntimeout = 2s\n", 1, "unknown section [resolvers]"),
    ("[resolver]\ntimeuot = 2s\n", 2, "unknown key 'timeuot' in [resolver]"),
    ("timeout = 2s\n", 1, "outside any section"),
    ("[resolver\n", 1, "bad section header"),
    ("[resolver]\njust words\n", 2, "expected 'key = value'"),
    ("  indented = 1\n", 1, "indented line continues no key"),
    ("[hosts]\npin = -bad-.example.com\n", 2, "bad host name"),
    ("[hosts]\nrefresh_interval = often\n", 2, "refresh_interval: bad duration 'often'"),
    ("[hosts]\npin = a.example.com\nrefresh_interval = 5ms\n", 3, "refresh_interval: must be at least 1s"),
    ("[router]\nstatic = 2001:db8::1\n", 2, "bad IPv4 address"),
    ("[resolver]\ncontainer_listen = 127.0.0.53\n", 2, "127.0.0.53 cannot reach this host from a container"),
    ("[resolver]\ncontainer_listen = fe80::53\n", 2, "expected an IPv4 address or no"),
    ("[resolver]\ncontainer_listen = 169.254.0.53:5353\n", 2, "expected an IPv4 address or no"),
    ("[resolver]\ncontainer_listen = 224.0.0.53\n", 2, "cannot reach this host from a container"),
    ("[resolver]\nlisten = 0.0.0.0:53\n", 2, "169.254.0.53 is already covered by listen 0.0.0.0:53"),
    ("[resolver]\nlisten = 127.0.0.35\ncontainer_listen = 127.0.0.35\n", 3, "cannot reach this host from a"),
    ("[resolver]\nlisten = 198.18.0.53\ncontainer_listen = 198.18.0.53\n", 3, "already covered by listen"),
    ("[router]\ninterfaces = eth0 a/b\n", 2, "bad interface name"),
]


@pytest.mark.parametrize("text, line, message", MISTAKES, ids=[m[2] for m in MISTAKES])
def test_each_kind_of_mistake_is_reported_at_its_line(tmp_path, text, line, message):
    problems = problems_of(tmp_path, text)
    path = str(tmp_path / "bootres.conf")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}: ")
    assert message in problems[0]


def test_upstreams_split_into_plain_endpoints_and_domain_routes(tmp_path):
    cfg = config.load(write(tmp_path, "[resolver]\nupstreams = 198.18.0.10 Corp.Example.=198.18.5.53\n"
                                      "  corp.example=[2001:db8::1]:5353 lab_1.test=198.18.6.1:53\n"))
    assert [str(e) for e in cfg.resolver.upstreams] == ["198.18.0.10:53"]
    assert [(d, str(e)) for d, e in cfg.resolver.upstream_domains] == [
        ("corp.example", "198.18.5.53:53"), ("corp.example", "[2001:db8::1]:5353"), ("lab_1.test", "198.18.6.1:53"),
    ]


def test_no_upstreams_at_all_is_valid_they_come_from_the_host(tmp_path):
    cfg = config.load(write(tmp_path, "[resolver]\nupstreams =\nupstreams_file =\n"))
    assert cfg.resolver.upstreams == () and cfg.resolver.upstreams_file is None


def test_every_bad_item_of_a_list_is_named(tmp_path):
    [problem] = problems_of(tmp_path, "[resolver]\nupstreams = ns1 198.18.0.1 ns2\n")
    assert "'ns1'" in problem and "'ns2'" in problem


def test_inline_comments_and_continuations(tmp_path):
    cfg = config.load(write(tmp_path, "[resolver]\nupstreams = 198.18.0.10  # first\n  # a comment line\n  198.18.0.11 ; second\n"))
    assert [str(e) for e in cfg.resolver.upstreams] == ["198.18.0.10:53", "198.18.0.11:53"]


def test_missing_file_named_explicitly_is_an_error(tmp_path):
    path = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:0: cannot read: No such file or directory"]


def test_undecodable_file_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "bootres.conf"
    path.write_bytes(b"[resolver]\ntimeout = \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        config.load(str(path))
    assert str(caught.value.problems[0]).startswith(f"{path}:0: cannot read:")


def test_conf_d_snippets_override_in_name_order(tmp_path):
    main = write(tmp_path, "[resolver]\ntimeout = 3s\nupstreams = 198.18.0.10\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-late.conf").write_text("[resolver]\ntimeout = 2s\n")
    (tmp_path / "conf.d" / "10-early.conf").write_text("[resolver]\ntimeout = 1s\nstrategy = race\n")
    (tmp_path / "conf.d" / "ignored.txt").write_text("[nonsense\n")
    cfg = config.load(main)
    assert cfg.resolver.timeout == 2.0 and cfg.resolver.strategy == "race"
    assert [os.path.basename(s) for s in cfg.sources] == ["bootres.conf", "10-early.conf", "20-late.conf"]


def test_problems_in_several_files_are_all_reported_with_their_own_path(tmp_path):
    main = write(tmp_path, "[resolver]\ntimeout = soon\n")
    (tmp_path / "conf.d").mkdir()
    snippet = tmp_path / "conf.d" / "50-site.conf"
    snippet.write_text("[router]\n\nstatic = gateway\n")
    with pytest.raises(ConfigError) as caught:
        config.load(main)
    assert [(p.path, p.line) for p in caught.value.problems] == [(main, 2), (str(snippet), 3)]


def test_a_duplicate_across_files_is_an_override_not_an_error(tmp_path):
    main = write(tmp_path, "[hosts]\npin = a.example.com\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "pin.conf").write_text("[hosts]\npin =\n")
    assert config.load(main).hosts.pin == ()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_gives_a_config_or_clean_problems(text):
    try:
        config.parse([("fuzz.conf", text)])
    except ConfigError as exc:
        assert exc.problems and all(re.match(r"^fuzz\.conf:\d+: \S", str(p)) for p in exc.problems)


def test_hosts_refresh_interval_defaults_to_five_minutes_and_takes_any_duration(tmp_path):
    assert config.load(write(tmp_path, "")).hosts.refresh_interval == 300.0
    assert config.load(write(tmp_path, "[hosts]\nrefresh_interval = 2s\n")).hosts.refresh_interval == 2.0
    assert config.load(write(tmp_path, "[hosts]\nrefresh_interval = 1h\n")).hosts.refresh_interval == 3600.0


# --- bootres check ----------------------------------------------------------------


def test_check_accepts_a_good_file(capsys):
    assert cli.main(["check", "-c", str(DATA / "good.conf")]) == 0
    assert "valid" in capsys.readouterr().out


def test_check_validates_the_hosts_refresh_interval(tmp_path, capsys):
    path = write(tmp_path, "[hosts]\n# every 30 seconds\nrefresh_interval = 30ms\n")
    assert cli.main(["check", "-c", path]) == 2
    assert capsys.readouterr().out.splitlines() == [f"{path}:3: refresh_interval: must be at least 1s"]
    path = write(tmp_path, "[hosts]\nrefresh_interval = 30s\n")
    assert cli.main(["check", "-c", path]) == 0


def test_check_reports_three_mistakes_on_lines_3_7_9_and_exits_2(capsys):
    path = str(DATA / "three-mistakes.conf")
    assert cli.main(["check", "-c", path]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:3", f"{path}:7", f"{path}:9"]
    assert "bad address 'nameserver.example.com'" in lines[0]
    assert "unknown key 'colour' in [hosts]" in lines[1]
    assert "expected yes or no" in lines[2]


# --- lines are what an editor shows: only "\n" ends one ("\r\n" tolerated)

STRAYS = {"\r": "carriage return", "\v": "vertical tab", "\f": "form feed", "\x1c": "file separator",
          "\x1d": "group separator", "\x1e": "record separator", "\x85": "next line", "\u2028": "line separator",
          "\u2029": "paragraph separator"}


@pytest.mark.parametrize("char", list(STRAYS), ids=[f"U+{ord(c):04X}" for c in STRAYS])
def test_a_stray_line_break_is_reported_at_its_line_and_shifts_nothing(tmp_path, char):
    path = write(tmp_path, f"[resolver]\ntimeout = 2s{char}strategy = hedge\n\n[hosts]\nself = maybe\n", "x.conf")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    problems = caught.value.problems
    assert {p.line for p in problems} <= {2, 5}, [str(p) for p in problems]
    assert any(p.line == 2 and f"stray {STRAYS[char]}" in p.message and f"U+{ord(char):04X}" in p.message
               for p in problems)
    assert any(p.line == 5 and p.message.startswith("self: expected yes or no") for p in problems)


def test_a_stray_line_break_in_a_comment_is_reported_too(tmp_path):
    # An editor that breaks the line there shows "timeout = 1s" as a setting that is not one.
    problems = problems_of(tmp_path, "[resolver]\n# note\u2028timeout = 1s\n")
    assert problems == [f"{tmp_path / 'bootres.conf'}:2: stray line separator (U+2028) in the line: "
                        "only a newline ends a line"]


def test_crlf_line_endings_read_like_lf(tmp_path):
    text = "[resolver]\ntimeout = 2s\nupstreams = 198.18.0.10\n  198.18.0.11\n"
    crlf = tmp_path / "crlf.conf"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    assert config.load(str(crlf)).resolver == config.load(write(tmp_path, text)).resolver
    crlf.write_bytes(b"[resolver]\r\ntimeout = soon\r\n")
    with pytest.raises(ConfigError) as caught:
        config.load(str(crlf))
    assert [str(p) for p in caught.value.problems] == [f"{crlf}:2: timeout: bad duration 'soon' (use a number with "
                                                        "ms, s, m, h or d)"]


def test_a_lone_carriage_return_in_the_file_is_not_a_line_end(tmp_path):
    """load() reads the file without universal newlines: the reader, not open(), decides what a line is."""
    path = tmp_path / "bootres.conf"
    path.write_bytes(b"[resolver]\ntimeout = 2s\rstrategy = hedge\n[hosts]\nself = maybe\n")
    with pytest.raises(ConfigError) as caught:
        config.load(str(path))
    assert [(p.line, p.message.split(" (")[0]) for p in caught.value.problems][0] == (2, "stray carriage return")
    assert caught.value.problems[-1].line == 4


def test_a_page_break_alone_on_a_line_is_a_blank_line(tmp_path):
    problems = problems_of(tmp_path, "[resolver]\n\f\n\x1c \t\ntimeout = soon\n")
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'bootres.conf'}:4: timeout: bad duration")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["[resolver]", "timeout = 2s", "strategy = hedge", "  198.18.0.1", "# c", "",
                                 "[hosts]", "self = no", "bogus", "\n", "\n", "\r\n", *STRAYS]),
                max_size=40).map("".join)
       | st.lists(st.text(alphabet="[]=# a\n\r\x0b\x0c\x1c\x85\u2028", max_size=8), max_size=20).map("\n".join))
def test_every_problem_is_at_a_line_that_exists_and_every_stray_is_reported(text):
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    strays = {number for number, line in enumerate(lines, start=1)
              if line.strip() and any(char in line for char in STRAYS)}
    try:
        config.parse([("fuzz.conf", text)], "fuzz.conf")
    except ConfigError as exc:
        assert all(0 <= p.line <= len(lines) for p in exc.problems)
        assert all(lines[p.line - 1].strip() for p in exc.problems if p.line)
        assert strays <= {p.line for p in exc.problems if p.message.startswith("stray ")}
    else:
        assert not strays


def test_container_listen_no_leaves_the_listen_addresses_alone(tmp_path):
    cfg = config.load(write(tmp_path, "[resolver]\nlisten = 127.0.0.35 [::1]:53\ncontainer_listen = no\n"))
    assert cfg.resolver.container_listen is None
    assert cfg.resolver.endpoints == cfg.resolver.listen
