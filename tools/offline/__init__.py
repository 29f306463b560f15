"""Rendering a stack without the Pulumi CLI or a cloud account.

- `engine`: run the program under the SDK's mocks and record every registration
  (`render_stack`, `render_program`, `Rendering`).
- `outputs`: the computed outputs the mocks return, derived from the stack's region and names.
- `wire`: the engine's property wire format and the `Secret` marker.
- `stack_files`: read, override and write `stacks/Pulumi.<stack>.yaml`.
- `sdk_hooks`: the Pulumi SDK internals all of this relies on, in one place.
"""
