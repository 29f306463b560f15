"""Hugging Face directory → DeepGPU-LLM (aiacc) directory: what the conversion Job runs.

    python -m llm_server.convert --model qwen-7b-chat-aiacc --root /llm-model

Idempotent and never half-written: the vendor converter writes into a temporary sibling
directory, a completion marker is written into it last, and only then is it renamed to the
model's directory. A model directory without the marker (an interrupted copy, an old tool) is
treated as half-written and converted again; a directory with the marker is left alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .catalog import ModelEntry, UnknownModelError, resolve_model
from .logs import configure_logging, log_event

logger = logging.getLogger(__name__)
MARKER = ".aiacc-conversion-complete.json"
# Newer DeepGPU-LLM releases ship the unified converter; older ones only the qwen one.
CONVERTERS = ("huggingface_model_convert", "huggingface_qwen_convert")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


class ConversionError(RuntimeError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Converter:
    executable: str
    name: str

    def command(self, source: Path, out: Path, model_name: str) -> list[str]:
        # The unified converter documents "--flag"; the older qwen one takes "-flag".
        dash = "--" if self.name == "huggingface_model_convert" else "-"
        return [
            self.executable,
            f"{dash}in_file",
            str(source),
            f"{dash}saved_dir",
            str(out),
            f"{dash}infer_gpu_num",
            "1",
            f"{dash}weight_data_type",
            "fp16",
            f"{dash}model_name",
            model_name,
        ]


def find_converter(entry: ModelEntry) -> Converter:
    for name in CONVERTERS:
        path = shutil.which(name)
        if path is None:
            continue
        if name == "huggingface_qwen_convert" and entry.family != "qwen":
            raise ConversionError(
                f"only the old converter huggingface_qwen_convert is installed and it converts "
                f"qwen models only; {entry.name} ({entry.family}) needs huggingface_model_convert",
                3,
            )
        return Converter(path, name)
    raise ConversionError(
        f"no DeepGPU-LLM converter on PATH (looked for {', '.join(CONVERTERS)}); run the "
        "conversion in the image built from app_images/llm/Dockerfile.aiacc",
        3,
    )


def check_model_dir(source: Path) -> None:
    if not source.is_dir():
        raise ConversionError(f"input {source} is not a directory", 2)
    if not (source / "config.json").is_file():
        raise ConversionError(
            f"input {source} is not a Hugging Face model directory: it has no config.json", 2
        )
    if not any(any(source.glob(p)) for p in WEIGHT_PATTERNS):
        raise ConversionError(
            f"input {source} is not a Hugging Face model directory: no weight files "
            f"({', '.join(WEIGHT_PATTERNS)})",
            2,
        )


def is_complete(target: Path) -> bool:
    return (target / MARKER).is_file()


def convert(entry: ModelEntry, root: Path, source: Path | None = None) -> Path:
    """Convert ``entry`` under ``root``; return the finished directory."""
    if not entry.is_aiacc or not entry.converter_model_name or not entry.source_model:
        raise ConversionError(f"{entry.name} is not an aiacc model; nothing to convert", 2)
    target = entry.path(root)
    if is_complete(target):
        log_event(
            logger,
            "conversion_skipped",
            model=entry.name,
            target=str(target),
            reason="already converted",
        )
        return target
    source = source or resolve_model(entry.source_model).path(root)
    check_model_dir(source)
    converter = find_converter(entry)
    if target.exists():
        log_event(
            logger,
            "conversion_half_written",
            logging.WARNING,
            target=str(target),
            action="removing and converting again",
        )
        shutil.rmtree(target)
    for stale in root.glob(f".{entry.directory}.converting-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = root / f".{entry.directory}.converting-{os.getpid()}"
    work.mkdir(parents=True)
    command = converter.command(source, work, entry.converter_model_name)
    log_event(
        logger,
        "conversion_started",
        model=entry.name,
        source=str(source),
        converter=converter.name,
        command=command,
    )
    started = time.monotonic()
    try:
        _run_converter(command)
        if not any(work.iterdir()):
            raise ConversionError(f"{converter.name} exited 0 but wrote nothing to {work}", 4)
        _write_marker(work, entry, source, converter, time.monotonic() - started)
        os.rename(work, target)  # atomic on one filesystem: readers see all or nothing
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log_event(
        logger,
        "conversion_finished",
        model=entry.name,
        target=str(target),
        seconds=round(time.monotonic() - started, 1),
    )
    return target


def _run_converter(command: list[str]) -> None:
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # the converter's own progress, relayed as log events
            log_event(logger, "converter_output", line=line.rstrip())
        code = proc.wait()
    if code != 0:
        raise ConversionError(f"{Path(command[0]).name} failed with exit code {code}", 4)


def _write_marker(
    work: Path, entry: ModelEntry, source: Path, converter: Converter, seconds: float
) -> None:
    marker = work / MARKER
    with marker.open("w") as handle:
        json.dump(
            {
                "model": entry.name,
                "source": str(source),
                "converter": converter.name,
                "seconds": round(seconds, 1),
                "finished_at": time.time(),
            },
            handle,
        )
        handle.flush()
        os.fsync(handle.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="aiacc catalog name")
    parser.add_argument("--root", type=Path, default=Path("/llm-model"), help="model root")
    parser.add_argument("--source", type=Path, help="HF directory (default: from the catalog)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        convert(resolve_model(args.model), args.root, args.source)
    except UnknownModelError as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return 2
    except ConversionError as exc:
        log_event(logger, "conversion_failed", logging.ERROR, error=str(exc))
        print(f"convert: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
