"""Developer-only scripts: the test entry (`test.sh`), the plan benchmark, the Dockerfile lint
and the generator of the doc samples. Users need none of these."""
