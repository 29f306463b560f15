"""`python -m tools.dev.lint_dockerfiles`: real hadolint over Dockerfiles found under a root."""

from tools.dev.lint_dockerfiles import find_dockerfiles, main

CLEAN = """FROM python:3.11.13-slim-bookworm
WORKDIR /app
COPY app.py .
USER 10001
ENTRYPOINT ["python", "app.py"]
"""
LATEST_AND_UNPINNED = """FROM ubuntu:latest
RUN apt-get update && apt-get install -y curl
"""


def _image(root, name, files):
    for filename, text in files.items():
        path = root / name / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_finds_every_dockerfile_form_but_not_inside_virtualenvs(tmp_path):
    _image(
        tmp_path,
        "chat",
        {
            "Dockerfile": CLEAN,
            "Dockerfile.aiacc": CLEAN,
            "web.Dockerfile": CLEAN,
            ".venv/lib/Dockerfile": CLEAN,
            "Dockerfile.md": "notes",
            "Dockerfile.dockerignore": ".venv",
        },
    )
    names = [p.relative_to(tmp_path).as_posix() for p in find_dockerfiles(tmp_path)]
    assert names == ["chat/Dockerfile", "chat/Dockerfile.aiacc", "chat/web.Dockerfile"]


def test_clean_dockerfiles_pass(tmp_path, capsys):
    _image(tmp_path, "chat", {"Dockerfile": CLEAN})
    assert main(["--root", str(tmp_path)]) == 0
    assert "1 of 1 Dockerfile(s) clean" in capsys.readouterr().out


def test_findings_fail_and_name_file_and_rule(tmp_path, capsys):
    _image(tmp_path, "chat", {"Dockerfile": CLEAN})
    _image(tmp_path, "llm", {"Dockerfile": LATEST_AND_UNPINNED})
    assert main(["--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "llm/Dockerfile" in out
    assert "DL3007" in out  # latest tag
    assert "DL3008" in out  # apt packages not pinned


def test_an_images_own_hadolint_config_is_used(tmp_path):
    _image(
        tmp_path,
        "llm",
        {
            "Dockerfile": LATEST_AND_UNPINNED,
            ".hadolint.yaml": "ignored: [DL3007, DL3008, DL3009, DL3015]\n",
        },
    )
    assert main(["--root", str(tmp_path)]) == 0


def test_no_dockerfile_yet_is_not_a_failure(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "missing")]) == 0
    assert "no Dockerfile" in capsys.readouterr().out
