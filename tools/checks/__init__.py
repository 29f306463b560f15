"""Checks over a rendered stack and the model store.

- `policy_runner`: the CrossGuard pack in `policies/` run offline, as the analyzer would.
- `policy_report`: the table and Markdown reports of a policy run; `sarif`: the SARIF report.
- `model_store`: are the model files in OSS or on NAS where the pods will look?
"""
