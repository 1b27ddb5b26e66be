// Package kubeplay runs the Kubernetes manifest `flowctl translate --to
// kubernetes` writes as real pods, without a cluster, under `podman kube
// play`: it builds flowctl without cgo into the FROM-scratch image that
// `flowctl translate --dockerfile` describes (with `podman build`, no
// registry), plays the manifest on a podman network with DNS, and checks
// the sink files against `flowctl run` on the same input.
//
// Podman 4.3 (Debian 12) is not a cluster, so the test plays a copy of the
// manifest adapted to it (podmanManifest says what and why; so does
// docs/kubernetes.md, "Tested with real pods"). The tests skip, with the
// reason, when podman is missing, and fail instead when CI=true.
package kubeplay
