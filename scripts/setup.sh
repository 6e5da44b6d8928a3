#!/usr/bin/env bash
# One-time machine setup for building and testing HcService. Idempotent: every step checks first.
#
# TorchSharp 0.107.0's libLibTorchSharp.so needs GLIBCXX_3.4.32 (the libstdc++ of GCC 13+).
# Debian 12 ships 3.4.30, so libtorch fails to load with a DllNotFoundException for LibTorchSharp.
# The fix (docs/design.md section 9): take libstdc++6 from Debian 13 (trixie), pinned at priority 100 so
# nothing else is upgraded from trixie. Ubuntu 24.04, Debian 13 and the -noble .NET images need nothing.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

has_glibcxx_3432() {
  local lib
  for lib in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /lib/x86_64-linux-gnu/libstdc++.so.6; do
    [ -e "$lib" ] && grep -q 'GLIBCXX_3\.4\.32' "$lib" && return 0
  done
  return 1
}

if has_glibcxx_3432; then
  log "libstdc++ has GLIBCXX_3.4.32: nothing to do for TorchSharp"
else
  . /etc/os-release
  if [ "${ID:-}" != "debian" ]; then
    log "libstdc++ lacks GLIBCXX_3.4.32 and this is ${PRETTY_NAME:-an unknown OS}: install GCC 13+'s libstdc++6 (Ubuntu 24.04 has it)"
    exit 1
  fi
  log "libstdc++ lacks GLIBCXX_3.4.32: installing libstdc++6 from Debian trixie (pinned at priority 100)"
  as_root tee /etc/apt/sources.list.d/hcservice-trixie.list >/dev/null <<'LIST'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
LIST
  as_root tee /etc/apt/preferences.d/hcservice-trixie-pin >/dev/null <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie --no-install-recommends libstdc++6
  has_glibcxx_3432 || { log "libstdc++6 from trixie did not provide GLIBCXX_3.4.32"; exit 1; }
  log "GLIBCXX_3.4.32 now available"
fi

# PostgreSQL server binaries for the embedded database of `hc up` and the service tests.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && [ -z "${HC_PG_BIN:-}" ]; then
  log "PostgreSQL server binaries missing: installing postgresql"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
fi
# As root, the embedded server runs as `postgres` through runuser (PostgreSQL refuses to run as root).
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  log "creating the postgres system user"
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# A C compiler for the fused CPU connection kernels (src/HcService.Core/Native), which the build compiles for this
# machine; without one every connection runs on tensor ops (slower on CPU, the same values).
if ! command -v gcc >/dev/null 2>&1; then
  log "gcc missing: installing it (the fused CPU connection kernels)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev
fi

# Fashion-MNIST (Xiao et al. 2017, MIT licence; Debian's dataset-fashion-mnist, gzipped IDX files) as the image dataset
# `fashion-mnist` under the default data root: image-classification jobs name it (its test split validates them).
fmnist_src=/usr/share/datasets/fashion-mnist
if ! [ -f "$fmnist_src/train-images-idx3-ubyte.gz" ]; then
  log "dataset-fashion-mnist missing: installing the Debian package (the vision jobs' dataset)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dataset-fashion-mnist
fi
fmnist="$(cd "$(dirname "$0")/.." && pwd)/data/datasets/fashion-mnist"
if [ -f "$fmnist_src/train-images-idx3-ubyte.gz" ] && ! [ -f "$fmnist/manifest.json" ]; then
  log "making data/datasets/fashion-mnist from $fmnist_src"
  mkdir -p "$fmnist.tmp"
  cp "$fmnist_src"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "$fmnist.tmp/"
  cat > "$fmnist.tmp/manifest.json" <<'JSON'
{
  "format": "hc-images/1",
  "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
  "train": { "images": "train-images-idx3-ubyte.gz", "labels": "train-labels-idx1-ubyte.gz" },
  "test": { "images": "t10k-images-idx3-ubyte.gz", "labels": "t10k-labels-idx1-ubyte.gz" },
  "source": "Fashion-MNIST, Zalando Research (Xiao, Rasul and Vollgraf 2017), https://github.com/zalandoresearch/fashion-mnist, from Debian's dataset-fashion-mnist package",
  "license": "MIT"
}
JSON
  rm -rf "$fmnist" && mv "$fmnist.tmp" "$fmnist"
fi

# The web UI's browser tests (BrowserTests): headless Chromium from the Debian package, driven by Playwright (no download).
if ! [ -x /usr/lib/chromium/chromium ] && ! command -v chromium >/dev/null 2>&1; then
  log "chromium missing: installing the Debian package (for the browser tests)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi

# The server-drawn plots (ScottPlot) measure text with a font from /usr/share/fonts (chromium brings one; a bare machine
# may have none).
if ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1; then
  log "fonts-dejavu-core missing: installing it (for the server-drawn plots)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core
fi

# Deployment checks (DeployTests): docker-compose (v1, Debian package) validates docker-compose.yml without a Docker
# engine; promtool (Debian package prometheus) checks deploy/prometheus.yml. Only the tools are wanted: on a machine
# with systemd the package enables and starts a Prometheus server on :9090, so it is stopped and disabled again.
missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (compose and Prometheus config checks)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if [ -d /run/systemd/system ]; then
      as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then   # sysvinit; where policy-rc.d denies starts (containers) nothing runs
      as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
      as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
fi

# The API reference's lint (OpenApiDocumentTests runs `redocly lint` on the OpenAPI document): Redocly CLI at a pinned
# version, in the repository's git-ignored .tools/redocly (nothing global). It needs Node.js 20.19+ or 22.12+ with npm; a
# machine without them, or without the npm registry, still gets everything else (only that test then fails, saying so).
REDOCLY_VERSION=2.77.0
redocly_dir="$(cd "$(dirname "$0")/.." && pwd)/.tools/redocly"
if [ -z "${HC_SETUP_SKIP_TEST_TOOLS:-}" ] && ! grep -qs "\"version\": \"$REDOCLY_VERSION\"" "$redocly_dir/node_modules/@redocly/cli/package.json"; then
  node_version="$(node --version 2>/dev/null || true)"
  if ! command -v npm >/dev/null || ! [[ "$node_version" =~ ^v(2[0-9]|[3-9][0-9])\. ]] || [[ "$node_version" =~ ^v20\.([0-9]|1[0-8])\. ]]; then
    log "Node.js 20.19+ (or 22.12+) with npm not found (node: ${node_version:-none}): skipping @redocly/cli, so the API reference's lint test will fail"
  else
    log "installing @redocly/cli $REDOCLY_VERSION into .tools/redocly (the API reference's lint)"
    npm install --prefix "$redocly_dir" --no-audit --no-fund --save-exact --loglevel=error "@redocly/cli@$REDOCLY_VERSION" >&2 \
      || log "npm could not install @redocly/cli $REDOCLY_VERSION: the API reference's lint test will fail until it is installed"
  fi
fi

if ! command -v dotnet >/dev/null; then
  log ".NET SDK not found: install the .NET 10 SDK (https://dot.net)"; exit 1
fi
