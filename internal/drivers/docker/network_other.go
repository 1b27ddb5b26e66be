//go:build !linux

package docker

// hostNetworkNote is logged when a container starts outside Linux: Docker
// Desktop runs containers in a virtual machine, and its host network is
// the machine's own unless "host networking" is enabled in its settings
// (Docker Desktop 4.34 or later); without it the component cannot reach
// flowctl on 127.0.0.1.
const hostNetworkNote = "containers use the host network; on Docker Desktop enable host networking (Settings → Resources → Network, 4.34 or later) or the component cannot reach flowctl on 127.0.0.1"
