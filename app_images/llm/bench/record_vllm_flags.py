"""Record the command-line flags of a vLLM release from its wheel, without importing vLLM.

The launcher maps our settings onto ``vllm serve`` flags; the tests check that mapping against
this record (vLLM cannot be imported on the CPU test machines). Re-run it when the pin moves:

    pip download vllm==0.33.0 --no-deps -d /tmp/w
    python bench/record_vllm_flags.py /tmp/w/vllm-0.33.0-*.whl > tests/data/vllm_flags.json
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import zipfile
from pathlib import Path

# Where vLLM declares `vllm serve`'s flags: engine flags are literal add_argument calls, the
# frontend's are generated from the FrontendArgs dataclass fields (``--<field-name>``).
LITERAL_FLAG_FILES = ("vllm/engine/arg_utils.py", "vllm/entrypoints/common/cli_args.py")
FRONTEND_FILE = "vllm/entrypoints/common/cli_args.py"
FRONTEND_CLASSES = ("BaseFrontendArgs", "FrontendArgs")


def literal_flags(tree: ast.AST) -> set[str]:
    flags: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
                    flags.add(str(arg.value))
    return flags


def dataclass_flags(tree: ast.AST, classes: tuple[str, ...]) -> set[str]:
    flags: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in classes:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    flags.add("--" + item.target.id.replace("_", "-"))
    return flags


def record(wheel: Path) -> dict[str, object]:
    version = re.match(r"vllm-([^-]+)-", wheel.name)
    with zipfile.ZipFile(wheel) as archive:
        trees = {name: ast.parse(archive.read(name)) for name in LITERAL_FLAG_FILES}
        model_config = archive.read("vllm/config/model.py").decode()
    flags: set[str] = set()
    for tree in trees.values():
        flags |= literal_flags(tree)
    flags |= dataclass_flags(trees[FRONTEND_FILE], FRONTEND_CLASSES)
    dtypes = re.search(r"ModelDType = Literal\[([^\]]*)\]", model_config)
    return {
        "vllm_version": version.group(1) if version else "unknown",
        "source": f"{wheel.name} (PyPI), files {', '.join(LITERAL_FLAG_FILES)}",
        "dtype_choices": ast.literal_eval(f"[{dtypes.group(1)}]") if dtypes else [],
        "flags": sorted(flags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("wheel", type=Path)
    json.dump(record(parser.parse_args().wheel), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
