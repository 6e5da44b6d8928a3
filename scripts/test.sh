#!/usr/bin/env bash
# The test suite, from a fresh clone: machine setup (only what is missing), build, every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
dotnet build HcService.sln -c Release -warnaserror --nologo -v quiet
# One test assembly at a time: the service tests time cancellation and dispatch, which CPU contention would blur.
dotnet test HcService.sln -c Release --no-build --nologo -m:1 "$@"
