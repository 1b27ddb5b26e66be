#!/usr/bin/env bash
# Builds a real kube-apiserver (for internal/kube/kubetest) from the wrapper
# module beside this script, into a cache outside the repository keyed by
# version, unless it is already there. Prints the binary's path on stdout,
# last line. About 550 s of CPU (6-8 min wall on 2 cores) and 1.7 GB of
# memory the first time; nothing afterwards.
set -euo pipefail
trap 'echo "build.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"

version=v1.32.13   # keep in step with go.mod
cache="${FLOWCTL_CI_CACHE:-$HOME/.cache/flowctl-ci}"
out="$cache/kube-apiserver-$version"

if [[ -x $out ]]; then
  echo "kube-apiserver $version: cached" >&2
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp "$out.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT

minor=${version#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

start=$SECONDS
# -mod=readonly: go.sum is committed; a build never rewrites it.
CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver
chmod 0755 "$tmp"
mv -f "$tmp" "$out"   # atomic: a concurrent reader sees the whole binary or none
trap - EXIT
echo "kube-apiserver $version: built in $((SECONDS - start)) s, $(du -h "$out" | cut -f1)" >&2
echo "$out"
