"""What a config change would do, before anyone applies it.

- `plan_diff`: compare two offline renderings (create, update, replace, delete; dangers).
- `change`: the preview flow `diff` and `model-change` share (render before/after, engine
  preview, printing and saving).
- `engine_events`: summarise the real engine's `pulumi preview --event-log` output.
- `automation`: run that preview through the Automation API where the CLI and credentials exist.
- `report`: the terminal and Markdown (PR comment) reports.
"""
