#!/usr/bin/env bash
# genproto.sh regenerates the Go code in pkg/wire from the .proto files in
# proto/. Run it from anywhere after changing a .proto file, and commit the
# result:
#
#   scripts/genproto.sh
#
# Every .proto file under proto/ is compiled (flowctl.stream.v1, flowctl.v1,
# flowctl.control.v1 ...); a new one needs no change here.
#
# Needs protoc with the well-known types (Debian: apt-get install -y
# protobuf-compiler libprotobuf-dev; .ci/install-protoc.sh does it) and Go.
# The Go plugins are installed at pinned versions into a private GOBIN so the
# output does not depend on whatever is on PATH.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v protoc >/dev/null 2>&1; then
	echo "genproto: protoc not found; install it with .ci/install-protoc.sh (Debian: apt-get install -y protobuf-compiler libprotobuf-dev)" >&2
	exit 1
fi

bin="${GENPROTO_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/flowctl-genproto}"
mkdir -p "$bin"
want_go="$bin/protoc-gen-go-$PROTOC_GEN_GO_VERSION"
want_grpc="$bin/protoc-gen-go-grpc-$PROTOC_GEN_GO_GRPC_VERSION"
if [[ ! -x "$want_go" ]]; then
	GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
	mv "$bin/protoc-gen-go" "$want_go"
fi
if [[ ! -x "$want_grpc" ]]; then
	GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
	mv "$bin/protoc-gen-go-grpc" "$want_grpc"
fi

# Well-known types (google/protobuf/*.proto) come from protoc's own include
# directory; Debian puts them in /usr/include.
includes=(-I proto)
for d in /usr/include /usr/local/include; do
	if [[ -f "$d/google/protobuf/empty.proto" ]]; then
		includes+=(-I "$d")
		break
	fi
done

out="${GENPROTO_OUT:-$root}"
mapfile -t files < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
protoc "${includes[@]}" \
	--plugin=protoc-gen-go="$want_go" \
	--plugin=protoc-gen-go-grpc="$want_grpc" \
	--go_out="$out" --go_opt=module=github.com/flowctl/flowctl \
	--go-grpc_out="$out" --go-grpc_opt=module=github.com/flowctl/flowctl \
	"${files[@]}"
echo "genproto: generated Go for ${#files[@]} proto files into $out/pkg/wire" >&2
