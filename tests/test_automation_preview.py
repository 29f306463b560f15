"""The engine-event summariser, on recorded previews in the engine's event JSON (parsed by the
SDK's own `EngineEvent.from_json`), and the Automation-API preview where a real one can run."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from tools.preview.automation import unavailable_reason
from tools.preview.engine_events import load_events, summarise
from tools.preview.plan_diff import assess
from tools.preview.report import EXIT_DANGEROUS, Report, format_markdown, format_text

FIXTURES = REPO / "tests" / "fixtures"


def _by_name(diff):
    return {c.name: c for c in diff.changes}


def test_model_change_preview_is_summarised_per_resource():
    diff = summarise(load_events(FIXTURES / "engine_events_model_change.json"), "dev")
    changes = _by_name(diff)
    assert {n: c.op for n, c in changes.items()} == {
        "llm-deployment": "update",
        "llm-convert": "create",
        "llm-model-info": "delete",
        "llm-service": "replace",
    }
    # the three replacement steps of one URN are one replace
    assert len(diff.by_op("replace")) == 1
    assert diff.unchanged == 2  # the VPC and the API-key Secret; stack and providers skipped


def test_empty_detailed_diff_falls_back_to_diffs_and_keys():
    changes = _by_name(summarise(load_events(FIXTURES / "engine_events_model_change.json")))
    deployment = changes["llm-deployment"]
    # `diffs` names only the top-level keys; the state's inputs give the leaves under them
    assert {p.path: (p.old, p.new) for p in deployment.properties} == {
        "metadata.annotations.chatchat.io/model": ("qwen-7b-chat-aiacc", "qwen-14b-chat-aiacc"),
        "spec.template.spec.containers[name=llm].env[name=LLM_MODEL].value": (
            "qwen-7b-chat-aiacc",
            "qwen-14b-chat-aiacc",
        ),
    }
    assert not any(p.replaces for p in deployment.properties)


def test_detailed_diff_paths_and_replace_kinds_are_used_when_present():
    service = _by_name(summarise(load_events(FIXTURES / "engine_events_model_change.json")))[
        "llm-service"
    ]
    assert [(p.path, p.old, p.new, p.replaces) for p in service.properties] == [
        ("spec.clusterIP", "172.21.3.10", "172.21.3.11", True)
    ]


def test_model_change_preview_stays_in_llm_scope():
    diff = assess(
        summarise(load_events(FIXTURES / "engine_events_model_change.json")), model_scope=True
    )
    assert all(c.llm_workload for c in diff.changes)
    assert not diff.dangerous


def test_adb_replacement_in_preview_is_dangerous():
    diff = assess(
        summarise(load_events(FIXTURES / "engine_events_adb_replace.json"), "prod"),
        model_scope=False,
    )
    changes = _by_name(diff)
    instance = changes["vectors-instance"]
    assert instance.op == "replace" and instance.stateful and instance.protected
    assert {(p.path, p.replaces) for p in instance.properties} == {
        ("vswitchId", True),
        ("zoneId", True),
    }
    assert any("replaces stateful ADB" in d for d in instance.dangers)
    assert any("protected" in d for d in instance.dangers)
    assert changes["vectors-account"].op == "replace"
    connection = changes["vectors-connection"]
    assert connection.op == "update" and not connection.dangers
    report = Report("prod: engine preview", diff=diff)
    assert report.exit_code == EXIT_DANGEROUS
    assert "vectors-instance" in format_text(report)


def test_secrets_in_engine_state_stay_masked():
    diff = summarise(load_events(FIXTURES / "engine_events_adb_replace.json"), "prod")
    connection = _by_name(diff)["vectors-connection"]
    assert connection.properties[0].old == connection.properties[0].new == "[secret]"
    markdown = format_markdown(Report("prod", diff=diff))
    assert "1b47061264138c4ac30d75fd1eb44270" not in markdown


def test_fixtures_follow_the_engine_event_schema():
    # Every resource step names an op the engine knows and a URN of this project.
    from pulumi.automation.events import OpType

    for path in FIXTURES.glob("engine_events_*.json"):
        for raw in json.loads(path.read_text()):
            if "resourcePreEvent" in raw:
                meta = raw["resourcePreEvent"]["metadata"]
                assert OpType(meta["op"])
                assert meta["urn"].split("::")[1] == "chatchat"


@pytest.mark.skipif(
    unavailable_reason() is not None, reason=f"needs a real Pulumi engine: {unavailable_reason()}"
)
def test_engine_preview_of_a_model_change_runs_without_touching_the_stack_file():
    from tools.preview.automation import run_preview

    stack_file = REPO / "stacks" / "Pulumi.dev.yaml"
    before = stack_file.read_bytes()
    diff, _ = run_preview("dev", {"llm.model": "qwen-14b-chat-aiacc"})
    assert stack_file.read_bytes() == before
    assert all(c.llm_workload for c in diff.changes)


def test_engine_runs_on_a_project_copy_with_the_override_applied(tmp_path):
    from tools.offline.stack_files import read_stack_file
    from tools.preview.automation import _project_copy

    real = REPO / "stacks" / "Pulumi.prod.yaml"
    before = real.read_bytes()
    _project_copy(
        "prod", {"llm.model": "chatglm2-6b-aiacc", "llm.pod.replicas": 1}, tmp_path, REPO / "stacks"
    )
    assert real.read_bytes() == before
    assert (tmp_path / "Pulumi.yaml").read_text() == (REPO / "Pulumi.yaml").read_text()
    assert (tmp_path / "components" / "config.py").is_file()
    copied = read_stack_file("prod", tmp_path / "stacks")
    assert copied["chatchat:llm"]["model"] == "chatglm2-6b-aiacc"
    assert copied["chatchat:llm"]["pod"] == {"replicas": 1, "instanceType": "ecs"}
    # everything else, comments included, is the real file's
    text = (tmp_path / "stacks" / "Pulumi.prod.yaml").read_text()
    assert text.startswith("# prod: two zones") and "instanceSpec: 4C32G" in text


def test_engine_property_paths_are_parsed_with_quoted_keys():
    from tools.preview.engine_events import parse_property_path

    assert parse_property_path('metadata.annotations["chatchat.io/model"]') == [
        "metadata",
        "annotations",
        "chatchat.io/model",
    ]
    assert parse_property_path("spec.template.spec.containers[0].image") == [
        "spec",
        "template",
        "spec",
        "containers",
        0,
        "image",
    ]
    assert parse_property_path('tags["owner"]') == ["tags", "owner"]
