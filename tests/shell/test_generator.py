"""bootres-generator: the drop-in from ``listen``, the default on a broken configuration, the script's cache.

The script (units/bootres-generator) runs here with BOOTRES_GENERATOR_ROOT
pointing at tmp_path, and BOOTRES_GENERATOR_PYTHON at a stand-in that only
records that it ran: the fast path must not start Python at all.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bootres import config
from bootres.shell import generator

SCRIPT = Path(__file__).resolve().parents[2] / "units" / "bootres-generator"


def etc(root: Path, main: str, **snippets: str) -> str:
    """Write ROOT/etc/bootres/bootres.conf and conf.d snippets; return the main path."""
    directory = root / "etc" / "bootres"
    (directory / "conf.d").mkdir(parents=True, exist_ok=True)
    (directory / "bootres.conf").write_text(main)
    for name, text in snippets.items():
        (directory / "conf.d" / name).write_text(text)
    return str(directory / "bootres.conf")


def run_script(root: Path, out: Path) -> subprocess.CompletedProcess:
    marker = root / "python-ran"
    stand_in = root / "python"
    stand_in.write_text(f"#!/bin/sh\necho \"$@\" > {marker}\n")
    stand_in.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "BOOTRES_GENERATOR_ROOT": str(root), "BOOTRES_GENERATOR_PYTHON": str(stand_in)}
    return subprocess.run([str(SCRIPT), str(out), str(out) + ".early", str(out) + ".late"], env=env,
                          capture_output=True, text=True, timeout=10)


def test_dropin_lists_every_listen_address_for_udp_and_tcp(tmp_path):
    main = etc(tmp_path, "[resolver]\nlisten = 127.0.0.35\n", **{"50-v6.conf": "[resolver]\nlisten = 127.0.0.35 [::1]:5353\n"})
    assert generator.generate(str(tmp_path / "out"), main) == []
    dropin = (tmp_path / "out" / "bootres.socket.d" / "listen.conf").read_text()
    # The empty lines first: they drop the unit's default Listen lines.
    assert dropin.splitlines()[1:] == ["[Socket]", "ListenDatagram=", "ListenStream=", "ExecStartPre=",
                                       "ListenDatagram=127.0.0.35:53", "ListenStream=127.0.0.35:53",
                                       "ListenDatagram=[::1]:5353", "ListenStream=[::1]:5353",
                                       "ListenDatagram=169.254.0.53:53", "ListenStream=169.254.0.53:53",
                                       "ExecStartPre=-ip address replace 169.254.0.53/32 dev lo scope host"]


def test_container_listen_is_listened_on_and_put_on_lo_first_unless_no(tmp_path):
    main = etc(tmp_path, "[resolver]\ncontainer_listen = 198.18.53.53\n")
    generator.generate(str(tmp_path / "out"), main)
    dropin = (tmp_path / "out" / "bootres.socket.d" / "listen.conf").read_text().splitlines()
    assert dropin[-3:] == ["ListenDatagram=198.18.53.53:53", "ListenStream=198.18.53.53:53",
                           "ExecStartPre=-ip address replace 198.18.53.53/32 dev lo scope host"]
    etc(tmp_path, "[resolver]\ncontainer_listen = no\n")
    generator.generate(str(tmp_path / "out"), main)
    dropin = (tmp_path / "out" / "bootres.socket.d" / "listen.conf").read_text().splitlines()
    # The empty ExecStartPre= drops the unit's own: nothing is put on lo.
    assert dropin[1:] == ["[Socket]", "ListenDatagram=", "ListenStream=", "ExecStartPre=",
                          "ListenDatagram=127.0.0.35:53", "ListenStream=127.0.0.35:53"]


def test_shipped_unit_defaults_are_what_the_generator_renders_for_the_shipped_configuration(tmp_path):
    """The unit's own lines (used when no drop-in exists) say what the default configuration's drop-in says."""
    unit = (SCRIPT.parent / "bootres.socket").read_text().splitlines()
    own = [line for line in unit if line.startswith(("ListenDatagram=", "ListenStream=", "ExecStartPre="))]
    rendered = generator.render(generator.configured(str(tmp_path / "none.conf"))[0]).splitlines()
    assert own == [line for line in rendered if "=" in line and not line.endswith("=")]


def test_broken_configuration_listens_on_the_default_and_says_why(tmp_path):
    main = etc(tmp_path, "[resolver]\nlisten = 198.18.0.53\n", **{"99-typo.conf": "[resolver]\nlisten = nowhere\n"})
    lines = generator.generate(str(tmp_path / "out"), main)
    assert lines[0].startswith(f"{main[:-len('bootres.conf')]}conf.d/99-typo.conf:2: listen: bad address")
    assert lines[-1] == ("bootres.socket listens on the default 127.0.0.35:53, 169.254.0.53:53 until the configuration"
                         " is fixed")
    dropin = (tmp_path / "out" / "bootres.socket.d" / "listen.conf").read_text()
    assert "ListenDatagram=127.0.0.35:53\n" in dropin and "198.18.0.53" not in dropin


def test_unreadable_main_file_is_a_problem_too(tmp_path):
    resolver, _, problems = generator.configured(str(tmp_path / "missing.conf"))
    assert (resolver.listen, resolver.container_listen) == (config.parse([]).resolver.listen,
                                                            config.parse([]).resolver.container_listen)
    assert problems and "cannot read" in str(problems[0])


def test_script_copies_the_cached_dropin_without_python_while_the_files_are_unchanged(tmp_path):
    etc(tmp_path, "[resolver]\nlisten = 198.18.0.53\n", **{"10-a.conf": "# nothing\n"})
    cache = tmp_path / "var" / "lib" / "bootres"
    cache.mkdir(parents=True)
    assert generator.refresh_cache(str(tmp_path / "etc/bootres/bootres.conf"), str(cache))
    proc = run_script(tmp_path, tmp_path / "out")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert not (tmp_path / "python-ran").exists()
    assert "ListenDatagram=198.18.0.53:53\n" in (tmp_path / "out" / "bootres.socket.d" / "listen.conf").read_text()


def test_script_runs_python_once_a_file_changed_or_the_cache_is_missing(tmp_path):
    etc(tmp_path, "[resolver]\nlisten = 198.18.0.53\n")
    cache = tmp_path / "var" / "lib" / "bootres"
    assert run_script(tmp_path, tmp_path / "out").returncode == 0  # no cache yet
    assert (tmp_path / "python-ran").read_text().split()[-3:] == [str(tmp_path / "out"), *(
        str(tmp_path / "out") + suffix for suffix in (".early", ".late"))]
    os.unlink(tmp_path / "python-ran")
    cache.mkdir(parents=True)
    assert generator.refresh_cache(str(tmp_path / "etc/bootres/bootres.conf"), str(cache))
    etc(tmp_path, "[resolver]\nlisten = 198.18.0.53\n", **{"20-new.conf": "[resolver]\nlisten = 198.18.0.54\n"})
    run_script(tmp_path, tmp_path / "out")
    assert (tmp_path / "python-ran").exists()


def test_refresh_cache_skips_a_broken_configuration_and_unchanged_files(tmp_path):
    main = etc(tmp_path, "[resolver]\nlisten = 198.18.0.53\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert generator.refresh_cache(main, str(cache))
    written = (cache / generator.CACHE_KEY).stat().st_mtime_ns
    assert generator.refresh_cache(main, str(cache))
    assert (cache / generator.CACHE_KEY).stat().st_mtime_ns == written
    etc(tmp_path, "[resolver]\nlisten = nowhere\n")
    assert not generator.refresh_cache(main, str(cache))
