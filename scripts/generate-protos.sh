#!/usr/bin/env bash
# Regenerates Sources/PrivatusWire/Generated from Sources/PrivatusWire/Protos.
#
# Uses Debian's protoc (package protobuf-compiler, installed here if missing and run as root)
# and the protoc-gen-swift of the swift-protobuf this package depends on, built in release.
# Never swift-protobuf's build plugin: it compiles its own protoc (minutes per cold build).
#
#   scripts/generate-protos.sh           rewrite the committed generated files
#   scripts/generate-protos.sh --check   regenerate into a temporary directory and compare;
#                                        exit 1 when the committed files differ (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

protos=Sources/PrivatusWire/Protos
generated=Sources/PrivatusWire/Generated

usage() { echo "usage: $0 [--check]" >&2; }
check=0
case $# in
0) ;;
1) if [[ $1 == --check ]]; then check=1; else usage; exit 2; fi ;;
*) usage; exit 2 ;;
esac

if ! command -v protoc >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "protoc not found: install Debian's protobuf-compiler" >&2
        exit 2
    fi
    echo "installing protobuf-compiler" >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends \
        protobuf-compiler >&2 ||
        { apt-get -o DPkg::Lock::Timeout=300 update -y >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
                --no-install-recommends protobuf-compiler >&2; }
fi
echo "$(protoc --version)" >&2

swift build -c release --product protoc-gen-swift >&2
plugin="$(swift build -c release --show-bin-path)/protoc-gen-swift"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Sorted, relative to the proto path: the output must not depend on the file system's order.
mapfile -t files < <(cd "$protos" && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
if [[ ${#files[@]} -eq 0 ]]; then
    echo "no .proto files under $protos" >&2
    exit 2
fi
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$protos" \
    --swift_out="$out" --swift_opt=Visibility=Public "${files[@]}"

if [[ $check -eq 1 ]]; then
    if diff -r -u "$generated" "$out"; then
        echo "generated Swift matches $protos" >&2
    else
        echo "$generated is out of date: run scripts/generate-protos.sh and commit the result" >&2
        exit 1
    fi
else
    mkdir -p "$generated"
    find "$generated" -name '*.pb.swift' -delete
    cp -R "$out"/. "$generated"/
    echo "regenerated $generated" >&2
fi
