#!/usr/bin/env bash
# python-rootfs.sh builds (once) a Debian bookworm root file system holding
# python3 and writes it as a tarball to the cache, outside the repository:
#
#   ${FLOWCTL_CI_CACHE:-$HOME/.cache/flowctl-ci}/python-rootfs-bookworm-v1.tar
#
# There is no image registry on CI machines, so the Python node image of
# test/compose is `docker import` of this tarball plus flowctl's static
# binary. debootstrap takes minutes (16 on a loaded machine), hence the
# cache, and .ci/run starting this script in the background early.
#
# The tarball only appears complete: it is written to a temporary name and
# renamed. Builds are serialized with flock on a lock file next to it, so a
# second caller (the test, while .ci/run's background build runs) waits for
# the first and then finds the tarball. On success the script prints the
# tarball's path as its last line.
#
# Exit codes: 0 built or cached; 3 cannot build here (not root, or no
# debootstrap) — the caller may skip; anything else: the build failed.
set -euo pipefail

cache=${FLOWCTL_CI_CACHE:-$HOME/.cache/flowctl-ci}
out=$cache/python-rootfs-bookworm-v1.tar
wait_secs=${PYTHON_ROOTFS_WAIT:-1500}

if [[ -s $out ]]; then echo "$out"; exit 0; fi
if [[ $(id -u) != 0 ]]; then echo "building the Python root file system needs root (debootstrap); not root" >&2; exit 3; fi
if ! command -v debootstrap >/dev/null; then echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 3; fi

mkdir -p "$cache"
exec 9>"$out.lock"
waited=$(date +%s)
if ! flock -w "$wait_secs" 9; then echo "another build of $out held $out.lock for ${wait_secs}s" >&2; exit 1; fi
if [[ -s $out ]]; then echo "waited $(( $(date +%s) - waited ))s for another build of $out" >&2; echo "$out"; exit 0; fi

work=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "debootstrap bookworm into $work/rootfs ..." >&2
debootstrap --variant=minbase --include=python3-minimal,libpython3.11-stdlib \
  bookworm "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
# What the image does not need: apt's lists and caches, documentation.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
  "$work/rootfs/usr/share/doc" "$work/rootfs/usr/share/man" "$work/rootfs/usr/share/locale"
# The processors of test/compose use the standard library only.
chroot "$work/rootfs" /usr/bin/python3 -c 'import json, os, platform, sys, time' || {
  echo "python3 in $work/rootfs cannot import the standard library" >&2; exit 1; }
tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
mv -f "$work/rootfs.tar" "$out"
echo "built $out in $(( $(date +%s) - start ))s ($(du -h "$out" | cut -f1))" >&2
echo "$out"
