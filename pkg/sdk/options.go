package sdk

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Environment variables Serve reads. flowctl's process driver sets them; the
// first six are the earlier flowctl's contract, the rest are flowctl's own.
const (
	// EnvEnable turns on registration with the control plane: "true" or "1".
	EnvEnable = "ENABLE_FLOWCTL"
	// EnvEndpoint is the control plane's host:port.
	EnvEndpoint = "FLOWCTL_ENDPOINT"
	// EnvComponentID is the component's id in the pipeline.
	EnvComponentID = "FLOWCTL_COMPONENT_ID"
	// EnvServiceID is read when EnvComponentID is unset.
	EnvServiceID = "FLOWCTL_SERVICE_ID"
	// EnvHeartbeatInterval is a Go duration ("10s") or whole seconds ("10").
	EnvHeartbeatInterval = "FLOWCTL_HEARTBEAT_INTERVAL"
	// EnvPort is the address to serve on: host:port, or a bare port meaning
	// every interface. Port 0 picks a free port; the bound one is registered.
	EnvPort = "PORT"
	// EnvHealthPort, when set, serves plain HTTP GET /health on that port
	// (200 while serving, 503 while draining) for container health checks.
	// A bare port binds the host EnvPort names, or every interface when
	// EnvPort names none.
	EnvHealthPort = "HEALTH_PORT"
	// EnvTTL is the registration TTL; default three heartbeat intervals.
	EnvTTL = "FLOWCTL_TTL"
	// EnvInitialCredit is how many batches flowctl may send ahead
	// (processors and sinks); default 4.
	EnvInitialCredit = "FLOWCTL_INITIAL_CREDIT"
	// EnvDrainTimeout bounds the drain after SIGTERM; default 10s.
	EnvDrainTimeout = "FLOWCTL_DRAIN_TIMEOUT"
	// EnvAdvertise is the host:port to register when PORT binds every
	// interface (in a container: the service name and port).
	EnvAdvertise = "FLOWCTL_ADVERTISE_ADDR"
	// EnvCPUProfile, when set, names a file Serve writes a CPU profile of
	// the component to (go tool pprof), from start until Serve returns.
	EnvCPUProfile = "FLOWCTL_SDK_CPUPROFILE"
	// EnvTLSCA is a PEM file of the CA that verifies the control plane's
	// certificate. Setting it (or any EnvTLS* variable) dials the control
	// plane over TLS; without any, the connection is plaintext (the
	// embedded control plane of `flowctl run` is plaintext on loopback).
	// A FLOWCTL_ENDPOINT of tls://host:port asks for TLS with the system's
	// roots.
	EnvTLSCA = "FLOWCTL_TLS_CA"
	// EnvTLSCert and EnvTLSKey are the PEM client certificate and key the
	// SDK presents for mutual TLS; both or neither.
	EnvTLSCert = "FLOWCTL_TLS_CERT"
	EnvTLSKey  = "FLOWCTL_TLS_KEY"
	// EnvTLSServerName overrides the name checked against the control
	// plane's certificate (default: the host of FLOWCTL_ENDPOINT).
	EnvTLSServerName = "FLOWCTL_TLS_SERVER_NAME"
	// EnvToken is a bearer token sent with every control-plane call:
	// `flowctl run` sets it to the run's own token, without which its
	// embedded control plane refuses the component. It is sent only over
	// TLS or to a loopback address or Unix socket; Serve refuses to start
	// rather than send it in plaintext off the machine.
	EnvToken = "FLOWCTL_TOKEN"
	// EnvStreamToken, when set, is the secret every call to the
	// component's own service must carry as `authorization: Bearer
	// <token>`; others get codes.Unauthenticated. flowctl makes a new one
	// at every start of the component and sends it, so another user of the
	// machine cannot read a source's events or write into a sink through
	// the component's port.
	EnvStreamToken = "FLOWCTL_STREAM_TOKEN"
)

// Defaults of the settings.
const (
	DefaultInitialCredit     = 4
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultDrainTimeout      = 10 * time.Second
	// DefaultLostAfter is how many heartbeat intervals without reaching the
	// control plane make the SDK decide its flowctl is gone.
	DefaultLostAfter = 3
)

// Info describes a component to flowctl (GetInfo and registration).
type Info struct {
	// Name is the component's kind; default the executable's name.
	Name string
	// Version is the component's own version.
	Version string
	// Description says what it does.
	Description string
	// InputTypes and OutputTypes are the event types it accepts and
	// produces; empty means any / unknown.
	InputTypes, OutputTypes []string
	// ConfigFields describe its config keys (which flowctl passes as
	// upper-cased environment variables).
	ConfigFields []ConfigField
	// ConfigSchemaJSON is a JSON Schema of its config, if it has one.
	ConfigSchemaJSON string
	// Metadata holds free-form labels for discovery.
	Metadata map[string]string
}

// ConfigField describes one config key of a component.
type ConfigField struct {
	// Name is the key under config: in the pipeline file.
	Name string
	// Type is one of string, int, float, bool, duration, list, map, any.
	Type string
	// Required is true when the key must be set.
	Required bool
	// DefaultJSON is the default as JSON; empty when there is none.
	DefaultJSON string
	// Description says what the key does.
	Description string
}

// Option changes how Serve runs. Options override the environment.
type Option func(*settings)

// settings is everything Serve needs, from the environment then options.
type settings struct {
	info          Info
	log           *slog.Logger
	getenv        func(string) string
	listener      net.Listener
	signals       []os.Signal
	enabled       bool
	endpoint      string
	id            string
	port          string
	advertise     string
	healthPort    string
	cpuProfile    string // EnvCPUProfile
	streamToken   string // EnvStreamToken
	interval      time.Duration
	ttl           time.Duration
	initialCredit int
	drainTimeout  time.Duration
	lostAfter     int
	ppidCheck     time.Duration
	cpTLS         controlPlaneTLS
}

// WithInfo describes the component.
func WithInfo(info Info) Option { return func(s *settings) { s.info = info } }

// WithLogger sets the logger; default text on stderr (stdout may carry data
// for some protocols, so the SDK never logs there).
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.log = l } }

// WithInitialCredit sets how many batches flowctl may send before the
// component answered any (processors and sinks). More credit hides network
// latency; less bounds memory and redelivery after a crash.
func WithInitialCredit(n int) Option { return func(s *settings) { s.initialCredit = n } }

// WithDrainTimeout bounds the drain after SIGTERM; keep it below the
// pipeline's stop_grace so flowctl does not SIGKILL a draining component.
func WithDrainTimeout(d time.Duration) Option { return func(s *settings) { s.drainTimeout = d } }

// WithEnv replaces os.Getenv as the source of the Env* settings (tests,
// or a component configured from elsewhere).
func WithEnv(getenv func(string) string) Option { return func(s *settings) { s.getenv = getenv } }

// WithListener serves on lis instead of listening on PORT.
func WithListener(lis net.Listener) Option { return func(s *settings) { s.listener = lis } }

// WithSignals sets the signals that start a drain; default SIGTERM and
// SIGINT. With none, only the end of Serve's context drains.
func WithSignals(sig ...os.Signal) Option { return func(s *settings) { s.signals = sig } }

// WithLostAfter sets after how many heartbeat intervals without reaching
// the control plane Serve gives up with ErrFlowctlGone.
func WithLostAfter(n int) Option { return func(s *settings) { s.lostAfter = n } }

// WithControlPlaneTLS dials the control plane over TLS: caFile verifies its
// certificate ("" for the system's roots), and certFile and keyFile, when
// given, are the client certificate for mutual TLS. It overrides EnvTLSCA,
// EnvTLSCert and EnvTLSKey.
func WithControlPlaneTLS(caFile, certFile, keyFile string) Option {
	return func(s *settings) {
		s.cpTLS.files.CAFile, s.cpTLS.files.CertFile, s.cpTLS.files.KeyFile = caFile, certFile, keyFile
		s.cpTLS.forced = true
	}
}

// WithControlPlaneTLSConfig dials the control plane over TLS with cfg (for
// certificates that are not in files); it wins over the file settings.
func WithControlPlaneTLSConfig(cfg *tls.Config) Option {
	return func(s *settings) { s.cpTLS.config = cfg }
}

// WithControlPlaneServerName sets the name checked against the control
// plane's certificate; it overrides EnvTLSServerName.
func WithControlPlaneServerName(name string) Option {
	return func(s *settings) { s.cpTLS.files.ServerName = name }
}

// WithControlPlaneToken sets the bearer token sent to the control plane; it
// overrides EnvToken. The token is sent only over TLS or to a loopback
// address.
func WithControlPlaneToken(token string) Option {
	return func(s *settings) { s.cpTLS.token = token }
}

// loadSettings reads the environment, then applies opts.
func loadSettings(opts []Option) (*settings, error) {
	s := &settings{getenv: os.Getenv, signals: []os.Signal{syscall.SIGTERM, os.Interrupt}}
	for _, o := range opts {
		o(s) // first pass: WithEnv decides where the environment comes from
	}
	env := s.getenv
	s.enabled = env(EnvEnable) == "true" || env(EnvEnable) == "1"
	s.endpoint = env(EnvEndpoint)
	s.id = env(EnvComponentID)
	if s.id == "" {
		s.id = env(EnvServiceID)
	}
	s.port = env(EnvPort)
	s.advertise = env(EnvAdvertise)
	s.healthPort = env(EnvHealthPort)
	s.cpuProfile = env(EnvCPUProfile)
	s.cpTLS.files.CAFile = env(EnvTLSCA)
	s.cpTLS.files.CertFile = env(EnvTLSCert)
	s.cpTLS.files.KeyFile = env(EnvTLSKey)
	s.cpTLS.files.ServerName = env(EnvTLSServerName)
	s.cpTLS.token = env(EnvToken)
	s.streamToken = env(EnvStreamToken)
	var err error
	if s.interval, err = envDuration(env, EnvHeartbeatInterval, DefaultHeartbeatInterval); err != nil {
		return nil, err
	}
	if s.ttl, err = envDuration(env, EnvTTL, 0); err != nil {
		return nil, err
	}
	if s.drainTimeout, err = envDuration(env, EnvDrainTimeout, DefaultDrainTimeout); err != nil {
		return nil, err
	}
	s.initialCredit = DefaultInitialCredit
	if v := env(EnvInitialCredit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: want a whole number of batches, at least 1", EnvInitialCredit, v)
		}
		s.initialCredit = n
	}
	s.lostAfter = DefaultLostAfter
	s.ppidCheck = 500 * time.Millisecond
	for _, o := range opts {
		o(s) // second pass: options win over the environment
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if s.info.Name == "" {
		s.info.Name = filepath.Base(os.Args[0])
	}
	if s.initialCredit < 1 {
		return nil, fmt.Errorf("initial credit %d: want at least 1 batch", s.initialCredit)
	}
	if s.interval <= 0 {
		return nil, fmt.Errorf("%s: heartbeat interval must be positive", EnvHeartbeatInterval)
	}
	if s.lostAfter < 1 {
		s.lostAfter = DefaultLostAfter
	}
	if s.enabled {
		if s.endpoint == "" {
			return nil, fmt.Errorf("%s=true but %s is empty: set it to the control plane's host:port, or unset %s to run without flowctl",
				EnvEnable, EnvEndpoint, EnvEnable)
		}
		if s.id == "" {
			return nil, fmt.Errorf("%s=true but %s is empty: set it to the component's id in the pipeline", EnvEnable, EnvComponentID)
		}
		var force bool
		s.endpoint, force = splitEndpoint(s.endpoint)
		s.cpTLS.forced = s.cpTLS.forced || force
	}
	return s, nil
}

func envDuration(env func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := env(name)
	if v == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 10s", name, v)
	}
	return d, nil
}

// listenAddr turns PORT into a listen address: "" → 127.0.0.1:0, a bare
// port → every interface.
func listenAddr(port string) string {
	switch {
	case port == "":
		return "127.0.0.1:0"
	case !strings.Contains(port, ":"):
		return ":" + port
	default:
		return port
	}
}

// healthAddr is where to serve HEALTH_PORT: as given when it names a host;
// a bare port binds the host of PORT when PORT names one (flowctl runs a
// local process with PORT=127.0.0.1:N, and its health port should not be
// reachable from other machines either), else every interface (the
// convention inside a container, where the engine probes from outside).
func healthAddr(health, port string) string {
	if strings.Contains(health, ":") {
		return health
	}
	if host, _, err := net.SplitHostPort(port); err == nil && host != "" {
		return net.JoinHostPort(host, health)
	}
	return ":" + health
}

// advertiseAddr is the endpoint to register for a bound address: the bound
// address itself unless it is a wildcard, then EnvAdvertise or the host
// name.
func advertiseAddr(bound net.Addr, advertise string) string {
	if advertise != "" {
		return advertise
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return bound.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		h, err := os.Hostname()
		if err != nil {
			h = "127.0.0.1"
		}
		return net.JoinHostPort(h, port)
	}
	return bound.String()
}
