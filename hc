#!/usr/bin/env bash
# `./hc ...`: run the hc CLI from a checkout. Applies the machine setup if needed and builds on first use.
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
dll="$root/src/HcService.Cli/bin/Release/net10.0/hc.dll"
# Setup says what it does; its "nothing to do" lines are not worth a line on every command.
# (The test suite's own tools, such as the API reference's linter, are scripts/test.sh's business, not every command's.)
HC_SETUP_SKIP_TEST_TOOLS=1 "$root/scripts/setup.sh" 2> >(grep -v --line-buffered 'nothing to do' >&2) >/dev/null
# Rebuild when a source changed since the last build (build outputs in bin/ and obj/ do not count).
if [ ! -f "$dll" ] || [ -n "$(find "$root/src" \( -name bin -o -name obj \) -prune -o \( -name '*.cs' -o -name '*.csproj' -o -name '*.js' -o -name '*.html' -o -name '*.css' \) -newer "$dll" -print -quit)" ]; then
  if [ -f "$dll" ]; then echo "hc: sources changed; rebuilding (about 30 s)..." >&2
  else echo "hc: building (first use: about a minute and a half)..." >&2; fi
  log="$(mktemp)"
  if ! dotnet build "$root/src/HcService.Cli" -c Release --nologo -v quiet >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; exit 1; fi
  rm -f "$log"
  touch "$dll"   # an incremental build may leave hc.dll as it was (a web file or another project changed)
fi
# The shipped datasets, wherever the command is run from (override with HC_DATA_ROOT or --data-root).
export HC_DATA_ROOT="${HC_DATA_ROOT-$root/data/datasets}"
# glibc malloc: serve allocations below 32 MiB from the heap and keep freed memory, instead of an mmap/munmap
# (and page faults) per large tensor on every step. Measured in BENCHMARKS.md; override by setting GLIBC_TUNABLES.
export GLIBC_TUNABLES="${GLIBC_TUNABLES-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296}"
exec dotnet "$dll" "$@"
