"""Command-line tools over the Pulumi program: `python -m tools <verb>` (`tools/cli.py`).

User commands sit at the top (`plan`, `diff`, `model_change`, `policy`, `import_values`,
`config_reference`); library code in sub-packages by job: `offline/` (rendering without a cloud),
`preview/` (what a change would do), `checks/` (policies, model store); `dev/` holds
developer-only scripts.
"""
