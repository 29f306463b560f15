"""`python -m tools <verb>`: one entry, one help listing every verb, shared flags alike."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tools.cli import VERBS, main, parse_assignments
from tools.offline.stack_files import apply_overrides


def test_help_lists_every_verb_and_each_verb_has_a_main(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, verb in VERBS.items():
        assert f"  {name} " in out
        module = __import__(verb.module, fromlist=["main"])
        assert callable(module.main), verb.module


def test_each_verb_help_names_the_new_form_and_the_shared_stack_flags(capsys):
    for name in ("plan", "diff", "model-change", "policy", "import-values"):
        with pytest.raises(SystemExit) as caught:
            main([name, "--help"])
        assert caught.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: python -m tools {name}")
        assert "--stack" in out and "--stacks-dir" in out, name


def test_unknown_verb_and_no_verb_are_usage_errors(capsys):
    assert main(["deploy"]) == 2
    assert "unknown verb 'deploy'" in capsys.readouterr().err
    assert main([]) == 2


def test_an_empty_set_value_unsets_the_key_so_its_default_applies():
    overrides = parse_assignments(["llm.modelPVC=", "llm.pod.replicas=2"])
    assert overrides == {"llm.modelPVC": None, "llm.pod.replicas": 2}
    config = apply_overrides({"chatchat:llm": {"modelPVC": "mine", "model": "m"}}, overrides)
    assert config == {"chatchat:llm": {"model": "m", "pod": {"replicas": 2}}}


def test_the_old_module_form_still_runs_and_says_it_is_deprecated():
    result = subprocess.run(
        [sys.executable, "-m", "tools.policy_check", "--stack", "dev"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "use `python -m tools policy`" in result.stderr


def test_plan_set_renders_the_change_and_refuses_a_spec_the_category_lacks(capsys):
    # prod is HighAvailability: 4C16G is a Basic-category ADB spec (cloud facts table)
    assert main(["plan", "--stack", "prod", "--set", "db.adb.instanceSpec=4C16G"]) == 1
    err = capsys.readouterr().err
    assert "db.adb.instanceSpec" in err and "4C32G" in err
    assert main(["plan", "--stack", "dev", "--set", "llm.model=qwen-14b-chat-aiacc", "--json"]) == 0
    assert '"qwen-14b-chat-aiacc"' in capsys.readouterr().out
