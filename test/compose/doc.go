// Package compose runs translated pipelines under the real docker-compose:
// it builds flowctl without cgo into the FROM-scratch image that
// `flowctl translate --dockerfile` describes, starts the translated
// Compose file, and checks the sink files against `flowctl run` on the
// same input — and that killing a node's container mid-run loses nothing.
// Every test skips, with the reason, when `docker info` or
// `docker-compose version` fails.
//
// TestFanoutReplicasPythonUnderCompose runs a `command:` Python stdio
// component inside its node's container, so its node image holds python3:
// a Debian bookworm root file system from debootstrap
// (test/images/python-rootfs.sh, cached outside the repository in
// ${FLOWCTL_CI_CACHE:-$HOME/.cache/flowctl-ci}), `docker import`ed, plus
// flowctl's static binary. Without root or debootstrap it skips; under
// CI=true it fails instead. TestGoldenComposeFilesConfig runs
// `docker-compose config -q` on internal/translate's golden Compose files.
package compose
