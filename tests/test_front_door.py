"""``python -m fedfair <command>``: one front door for the tools, each command's own options behind it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fedfair.__main__ as front

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_has_a_main():
    import importlib

    assert set(front.COMMANDS) == {"sweep", "compare", "report", "prepare", "suite", "rho"}
    for module in front.COMMANDS.values():
        assert callable(importlib.import_module(module).main)


def test_help_lists_the_commands_and_how_to_start_a_job(capsys):
    assert front.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n    {c} " in out for c in front.COMMANDS)
    assert "torchrun --nproc_per_node N+1 -m fedfair.run" in out


def test_no_command_or_an_unknown_one_is_exit_2(capsys):
    assert front.main([]) == 2
    assert front.main(["swep", "--x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fedfair: error: unknown command 'swep': one of sweep, compare, report, prepare, suite, rho "
                   "(python -m fedfair --help)"]


def test_a_command_gets_its_own_arguments(tmp_path, capsys):
    out = tmp_path / "sites"
    assert front.main(["prepare", "--source", "iris", "--agents", "2", "--out", str(out)]) == 0
    assert (out / "party_1.npz").exists() and (out / "test.npz").exists()
    assert 'dataset = "files"' in capsys.readouterr().out


def test_the_command_line_runs_it():
    p = subprocess.run([sys.executable, "-m", "fedfair", "report", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("usage: python -m fedfair report")
