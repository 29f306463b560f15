"""Command-line tools over the Pulumi program: offline plan, policy check, diff, model change."""
