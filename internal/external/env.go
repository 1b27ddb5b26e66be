package external

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/drivers/process"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/tracing"
)

// Environment variables flowctl gives every component process (the
// earlier flowctl's contract; see compat/flowctl-v1.md).
const (
	EnvEnable            = "ENABLE_FLOWCTL"
	EnvEndpoint          = "FLOWCTL_ENDPOINT"
	EnvComponentID       = "FLOWCTL_COMPONENT_ID"
	EnvServiceID         = "FLOWCTL_SERVICE_ID"
	EnvHeartbeatInterval = "FLOWCTL_HEARTBEAT_INTERVAL"
	// EnvToken is the run's control-plane bearer token; the Go SDK
	// (pkg/sdk EnvToken) sends it with every control-plane call.
	EnvToken = "FLOWCTL_TOKEN"
	// EnvStreamToken is a secret flowctl makes for each start of a
	// component and sends as `authorization: Bearer <token>` on every call
	// to the component's own service (gRPC and flowctl.v1 streams, HTTP
	// requests): a component that checks it (the Go SDK does, pkg/sdk
	// EnvStreamToken) serves flowctl and no other user of the machine.
	EnvStreamToken = "FLOWCTL_STREAM_TOKEN"
	EnvTTL         = "FLOWCTL_TTL"
	EnvHealthPort  = "HEALTH_PORT"
	EnvPort        = "PORT"
)

// DefaultHeartbeatInterval is FLOWCTL_HEARTBEAT_INTERVAL when the runtime
// sets none.
const DefaultHeartbeatInterval = 10 * time.Second

// BuildEnv returns the environment of one start of c, as a map, from lowest
// to highest precedence: OTEL_SERVICE_NAME=<c's name> when tracing is on
// (docs/tracing.md), the heartbeat settings (FLOWCTL_HEARTBEAT_INTERVAL,
// FLOWCTL_TTL: tuning a component may change in its env), the protocol's
// variables (launch), c's config keys upper-cased (values that are not
// strings as JSON; also under the name c.ConfigEnv gives a key), c's env,
// and last flowctl's own ones (ENABLE_FLOWCTL, the endpoint, ids, tokens
// and TLS settings; FLOWCTL_STREAM_TOKEN is new at every start): a pipeline file written for
// another setup (FLOWCTL_ENDPOINT=localhost:8080) must not send a component
// elsewhere. overridden names, sorted, the user's values that flowctl's
// replaced. HEALTH_PORT is a free port unless the user set it.
func BuildEnv(rt *Runtime, c *spec.Component, launch Launch) (env map[string]string, overridden []string, err error) {
	own := map[string]string{
		EnvEnable:      "true",
		EnvComponentID: c.Name,
		EnvServiceID:   c.Name,
	}
	hb := rt.HeartbeatInterval
	if hb <= 0 {
		hb = DefaultHeartbeatInterval
	}
	own[EnvHeartbeatInterval] = hb.String()
	if rt.HeartbeatTTL > 0 {
		own[EnvTTL] = rt.HeartbeatTTL.String()
	}
	if rt.Endpoint != "" {
		own[EnvEndpoint] = rt.Endpoint
	}
	// The embedded control plane is plaintext on loopback: TLS settings and
	// a token a user exported for the CLI are not for it, so a child does
	// not inherit them (the SDK treats empty as unset); it gets the run's
	// own token instead; the file's env cannot set them either.
	for _, k := range controlPlaneTLSEnv {
		own[k] = ""
	}
	if rt.ControlPlane != nil {
		own[EnvToken] = rt.ControlPlane.Token()
	}
	own[EnvStreamToken] = rand.Text()
	env = map[string]string{}
	if tracing.Enabled(nil) {
		// A traced component reports as a service of its own (the SDK's
		// spans), unless its env names one.
		env[tracing.EnvServiceName] = c.Name
	}
	for _, k := range []string{EnvHeartbeatInterval, EnvTTL} {
		if v, ok := own[k]; ok {
			env[k] = v
			delete(own, k)
		}
	}
	for k, v := range launch.Env {
		env[k] = v
	}
	for k, v := range c.Config {
		name := envName(k)
		if name == "" {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case nil:
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, nil, fmt.Errorf("component %q: config.%s: %w", c.Name, k, err)
			}
			s = string(b)
		}
		env[name] = s
		// The variable the component's metadata.json names for the key
		// (the earlier flowctl passed it there: duckdb-consumer reads
		// database_path from DUCKDB_PATH).
		if mapped := c.ConfigEnv[k]; mapped != "" {
			env[mapped] = s
		}
	}
	for k, v := range c.Env {
		env[k] = v
	}
	for k, v := range own {
		if u, set := env[k]; set && u != v {
			overridden = append(overridden, k)
		}
		env[k] = v
	}
	sort.Strings(overridden)
	if _, set := env[EnvHealthPort]; !set {
		port, err := process.FreePort("127.0.0.1")
		if err != nil {
			return nil, nil, err
		}
		env[EnvHealthPort] = strconv.Itoa(port)
	}
	return env, overridden, nil
}

// controlPlaneTLSEnv are the variables with which the Go SDK (pkg/sdk
// EnvTLS*, EnvToken) and the CLI secure their control-plane connection.
var controlPlaneTLSEnv = []string{
	"FLOWCTL_TLS_CA", "FLOWCTL_TLS_CERT", "FLOWCTL_TLS_KEY", "FLOWCTL_TLS_SERVER_NAME", EnvToken,
}

// envName turns a config key into an environment variable name: upper
// case, anything but letters, digits and _ becomes _.
func envName(k string) string {
	var b strings.Builder
	for _, r := range k {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// environ is os.Environ overlaid with env, sorted for stable output.
func environ(env map[string]string) []string {
	base := os.Environ()
	out := make([]string, 0, len(base)+len(env))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := env[k]; !over {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// argv returns the command line of c and its working directory: both
// resolved against the pipeline file's directory when relative, and made
// absolute (the child runs in dir, where a relative command path would be
// resolved a second time). A command without a slash is looked up in PATH.
func argv(rt *Runtime, c *spec.Component) ([]string, string) {
	dir := c.WorkingDir
	switch {
	case dir == "":
		dir = rt.Dir
	case !filepath.IsAbs(dir) && rt.Dir != "":
		dir = filepath.Join(rt.Dir, dir)
	}
	if dir != "" {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	args := append(append([]string(nil), c.Command...), c.Args...)
	if len(args) > 0 && strings.Contains(args[0], "/") && !filepath.IsAbs(args[0]) && dir != "" {
		args[0] = filepath.Join(dir, args[0])
	}
	return args, dir
}
