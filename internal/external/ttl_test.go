package external

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/spec"
)

func TestOwnTTL(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want time.Duration
		err  string
	}{
		{"neither", nil, 0, ""},
		{"interval", map[string]string{EnvHeartbeatInterval: "10s"}, 30 * time.Second, ""},
		{"ttl wins", map[string]string{EnvHeartbeatInterval: "10s", EnvTTL: "45s"}, 45 * time.Second, ""},
		{"bad ttl", map[string]string{EnvTTL: "soon"}, 0, `env.FLOWCTL_TTL "soon" is not a positive duration`},
		{"zero interval", map[string]string{EnvHeartbeatInterval: "0s"}, 0, `env.FLOWCTL_HEARTBEAT_INTERVAL "0s"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ownTTL(&spec.Component{Name: "c", Role: "source", Env: tc.env})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ownTTL = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestManagerGivesComponentsTheirOwnTTL: a flowctl.v1 component whose env
// says it heartbeats every 10 s registers (with no TTL, as such components
// do) into a registry that keeps it healthy for 30 s; the others get the
// run's default.
func TestManagerGivesComponentsTheirOwnTTL(t *testing.T) {
	src := `name: ttl
sources:
  - name: slow
    command: [./slow]
    protocol: flowctl-v1
    env:
      FLOWCTL_HEARTBEAT_INTERVAL: 10s
  - name: quick
    command: [./quick]
    protocol: flowctl-v1
sinks:
  - name: out
    command: [./out]
    protocol: stdio
    inputs: [slow, quick]
`
	p, diags := spec.Parse("ttl.yaml", []byte(src), spec.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	m, err := NewManager(p, ManagerOptions{HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	reg := m.Runtime().ControlPlane.Registry()
	for id, want := range map[string]time.Duration{"slow": 30 * time.Second, "quick": 3 * time.Second} {
		e, err := reg.Register(controlplane.Registration{ID: id, Endpoint: "127.0.0.1:9", Protocol: controlplane.ProtocolV1})
		if err != nil {
			t.Fatal(err)
		}
		if e.TTL != want {
			t.Errorf("%s: TTL %v, want %v", id, e.TTL, want)
		}
	}
}
