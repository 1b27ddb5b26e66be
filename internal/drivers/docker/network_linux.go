//go:build linux

package docker

// hostNetworkNote is logged when a container starts: empty on Linux, where
// a container on the host's network shares flowctl's loopback.
const hostNetworkNote = ""
