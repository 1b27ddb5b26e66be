package external

import (
	"fmt"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/spec"
)

// ownTTL is the TTL a component's own heartbeat settings ask for: its
// env's FLOWCTL_TTL, else DefaultTTLFactor times its env's
// FLOWCTL_HEARTBEAT_INTERVAL; 0 when it sets neither. The Go SDK registers
// FLOWCTL_TTL itself; flowctl.v1 and flowctl.ControlPlane registrations
// carry no TTL, so flowctl gives the registry this one for the component's
// id (controlplane.Registry.SetTTLFor). A component of the earlier
// ecosystem that heartbeats every 10 s is then written
// `env: {FLOWCTL_HEARTBEAT_INTERVAL: 10s}` rather than restarting every
// few seconds under the run's 3-interval default.
func ownTTL(c *spec.Component) (time.Duration, error) {
	parse := func(key string) (time.Duration, error) {
		v := c.Env[key]
		if v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%s %q: env.%s %q is not a positive duration such as \"30s\"", c.Role, c.Name, key, v)
		}
		return d, nil
	}
	if d, err := parse(EnvTTL); d > 0 || err != nil {
		return d, err
	}
	d, err := parse(EnvHeartbeatInterval)
	return controlplane.DefaultTTLFactor * d, err
}
