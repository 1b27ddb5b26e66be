package sdk_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/clientconfig"
	"github.com/flowctl/flowctl/internal/server"
	"github.com/flowctl/flowctl/internal/store/memory"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
	"github.com/flowctl/flowctl/pkg/sdk"
)

// upperProcessor is a processor with nothing to prove: these tests are
// about the connection to the control plane.
var upperProcessor = sdk.ProcessorFunc(func(ctx context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	return []*sdk.Event{e}, nil
})

// startControlPlane runs `flowctl server` (internal/server, memory store)
// in this process on a loopback port with the given listen options; it
// stops when the test ends.
func startControlPlane(t *testing.T, lo tlsutil.ListenOptions) (*server.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lo.Addr = lis.Addr().String()
	gopts, err := tlsutil.GRPCServerOptions(lo)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{
		Store: memory.New(), ServerOptions: gopts, HeartbeatInterval: 100 * time.Millisecond,
		TLS: lo.TLS.Enabled(), MTLS: lo.TLS.ClientCAFile != "",
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

// serveWith runs a processor with env (over the defaults of env()) and
// opts until the test ends; it returns the channel of Serve's result.
func serveWith(t *testing.T, cpAddr, id string, extra map[string]string, opts ...sdk.Option) chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts = append([]sdk.Option{sdk.WithEnv(env(cpAddr, id, extra)), sdk.WithSignals(), sdk.WithLogger(testLogger(t))}, opts...)
	go func() { done <- sdk.Serve(ctx, upperProcessor, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			done <- err
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return done
}

// TestControlPlaneTLS runs an SDK processor against a real control plane
// served with mutual TLS, TLS plus a bearer token, or plaintext plus a
// token, with the certificates of tlstest. A component the server accepts
// registers and heartbeats; one it refuses makes Serve return one error
// that names the cause, well before the retry deadline.
func TestControlPlaneTLS(t *testing.T) {
	b := tlstest.New(t)
	other := tlstest.New(t) // a CA the server does not know, with a server cert for "localhost"
	const token = "s3cret-token"
	mtls := tlsutil.ListenOptions{TLS: b.ServerOptions()}
	tlsToken := tlsutil.ListenOptions{TLS: tlsutil.ServerOptions{CertFile: b.Files.ServerCert, KeyFile: b.Files.ServerKey}, Token: token}
	plainToken := tlsutil.ListenOptions{Token: token}
	client := map[string]string{sdk.EnvTLSCA: b.Files.CACert, sdk.EnvTLSCert: b.Files.ClientCert, sdk.EnvTLSKey: b.Files.ClientKey}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	for _, tc := range []struct {
		name   string
		server tlsutil.ListenOptions
		env    map[string]string
		opts   func() []sdk.Option
		host   string   // dial this host instead of 127.0.0.1
		want   []string // error must mention each; nil: it registers
	}{
		{name: "mTLS right client cert", server: mtls, env: client},
		{name: "mTLS by name with server name override", server: mtls, env: with(client, sdk.EnvTLSServerName, "localhost")},
		{name: "mTLS via options", server: mtls, opts: func() []sdk.Option {
			return []sdk.Option{sdk.WithControlPlaneTLS(b.Files.CACert, b.Files.ClientCert, b.Files.ClientKey)}
		}},
		{name: "mTLS via tls.Config option", server: mtls, opts: func() []sdk.Option {
			return []sdk.Option{sdk.WithControlPlaneTLSConfig(b.ClientConfig(t, b.ClientOptions()))}
		}},
		{name: "mTLS no client cert", server: mtls, env: map[string]string{sdk.EnvTLSCA: b.Files.CACert},
			want: []string{"mutual TLS", "certificate required", sdk.EnvTLSCert}},
		{name: "mTLS cert from another CA", server: mtls, env: with(client, sdk.EnvTLSCert, b.OtherClientCert, sdk.EnvTLSKey, b.OtherClientKey),
			want: []string{"tls:", "refused the client certificate", sdk.EnvTLSCert}},
		{name: "mTLS server not trusted", server: mtls, env: with(client, sdk.EnvTLSCA, other.Files.CACert),
			want: []string{"x509", sdk.EnvTLSCA}},
		{name: "mTLS wrong server name", server: mtls, env: with(client, sdk.EnvTLSServerName, "flow.example.com"),
			want: []string{"flow.example.com", sdk.EnvTLSServerName}},
		{name: "mTLS plaintext client", server: mtls, env: nil,
			want: []string{"plaintext", sdk.EnvTLSCA}},
		{name: "TLS client to plaintext server", server: plainToken, env: with(client, sdk.EnvToken, token),
			want: []string{"handshake", "is the control plane serving TLS"}},
		{name: "token right", server: tlsToken, env: map[string]string{sdk.EnvTLSCA: b.Files.CACert, sdk.EnvToken: token}},
		{name: "token via option", server: tlsToken, env: map[string]string{sdk.EnvTLSCA: b.Files.CACert, sdk.EnvToken: "stale"},
			opts: func() []sdk.Option { return []sdk.Option{sdk.WithControlPlaneToken(token)} }},
		{name: "token wrong", server: tlsToken, env: map[string]string{sdk.EnvTLSCA: b.Files.CACert, sdk.EnvToken: "nope"},
			want: []string{"Unauthenticated", "invalid bearer token", "refused the token"}},
		{name: "token missing", server: tlsToken, env: map[string]string{sdk.EnvTLSCA: b.Files.CACert},
			want: []string{"missing bearer token", "requires a bearer token: set " + sdk.EnvToken}},
		{name: "token in plaintext to loopback", server: plainToken, env: map[string]string{sdk.EnvToken: token}},
		{name: "token in plaintext to localhost", server: plainToken, env: map[string]string{sdk.EnvToken: token}, host: "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := startControlPlane(t, tc.server)
			if tc.host != "" {
				_, port, _ := net.SplitHostPort(addr)
				addr = net.JoinHostPort(tc.host, port)
			}
			var opts []sdk.Option
			if tc.opts != nil {
				opts = tc.opts()
			}
			// A long heartbeat interval makes the retry deadline (three
			// intervals) long: a refusal must end Serve well before it.
			interval := "100ms"
			if tc.want != nil {
				interval = "10s"
			}
			id := "tls-" + strings.ReplaceAll(tc.name, " ", "-")
			start := time.Now()
			done := serveWith(t, addr, id, with(tc.env, sdk.EnvHeartbeatInterval, interval), opts...)

			if tc.want != nil {
				var err error
				select {
				case err = <-done:
					done <- err
				case <-time.After(10 * time.Second):
					t.Fatal("Serve still running: want a refusal")
				}
				if err == nil {
					t.Fatal("Serve returned nil, want a refusal")
				}
				t.Logf("Serve: %v", err)
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not mention %q:\n%v", w, err)
					}
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("refusal took %s: it should not be retried", d)
				}
				if _, ok := srv.Registry().Get(id); ok {
					t.Error("a refused component is in the registry")
				}
				return
			}

			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e, err := srv.Registry().WaitRegistered(wctx, id)
			if err != nil {
				select {
				case serr := <-done:
					t.Fatalf("not registered; Serve: %v", serr)
				default:
					t.Fatalf("not registered: %v", err)
				}
			}
			first := e.LastHeartbeat
			deadline := time.Now().Add(5 * time.Second)
			for {
				e, _ = srv.Registry().Get(id)
				if e.LastHeartbeat.After(first) && e.Metrics["batches"] != "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no heartbeat after registering: %+v", e)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if e.Health.String() != "healthy" {
				t.Errorf("health %s, want healthy", e.Health)
			}
		})
	}
}

// TestControlPlaneTLSSettingErrors covers what fails before any dial: bad
// files, and a token that would travel in plaintext off this machine.
func TestControlPlaneTLSSettingErrors(t *testing.T) {
	b := tlstest.New(t)
	for _, tc := range []struct {
		name     string
		endpoint string
		env      map[string]string
		want     string
	}{
		{"cert without key", "127.0.0.1:1", map[string]string{sdk.EnvTLSCA: b.Files.CACert, sdk.EnvTLSCert: b.Files.ClientCert}, "both"},
		{"missing CA file", "127.0.0.1:1", map[string]string{sdk.EnvTLSCA: b.Dir + "/absent.crt"}, "read CA file"},
		{"token in plaintext off the machine", "192.0.2.1:7070", map[string]string{sdk.EnvToken: "t"}, "refusing to send the token in plaintext"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := sdk.Serve(context.Background(), upperProcessor, sdk.WithEnv(env(tc.endpoint, "x", tc.env)), sdk.WithSignals(), sdk.WithLogger(testLogger(t)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve = %v, want it to mention %q", err, tc.want)
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
}

// TestControlPlaneTLSUnreachable: TLS to a port nobody listens on ends in
// one error after the retry deadline (three heartbeat intervals), not a
// hang.
func TestControlPlaneTLSUnreachable(t *testing.T) {
	b := tlstest.New(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	for _, endpoint := range []string{addr, "tls://" + addr} {
		t.Run(endpoint, func(t *testing.T) {
			e := map[string]string{sdk.EnvHeartbeatInterval: "200ms"}
			if !strings.HasPrefix(endpoint, "tls://") {
				e[sdk.EnvTLSCA] = b.Files.CACert
			}
			start := time.Now()
			err := sdk.Serve(context.Background(), upperProcessor, sdk.WithEnv(env(endpoint, "x", e)), sdk.WithSignals(), sdk.WithLogger(testLogger(t)))
			if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "(TLS)") || !strings.Contains(err.Error(), "is flowctl running") {
				t.Fatalf("Serve = %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s, want about 600ms", d)
			}
		})
	}
}

// TestEnvNamesMatchTheCLI: the SDK and the CLI read the same variables.
func TestEnvNamesMatchTheCLI(t *testing.T) {
	for sdkName, cliName := range map[string]string{
		sdk.EnvTLSCA: clientconfig.EnvCA, sdk.EnvTLSCert: clientconfig.EnvCert,
		sdk.EnvTLSKey: clientconfig.EnvKey, sdk.EnvToken: clientconfig.EnvToken,
	} {
		if sdkName != cliName {
			t.Errorf("sdk reads %s, the CLI %s", sdkName, cliName)
		}
	}
}
