package tlsutil_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
)

// startHealth serves the standard health service on a loopback port and
// returns its address; the server stops when the test ends.
func startHealth(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return lis.Addr().String()
}

// check makes one unary health call and one streaming (Watch) call.
func check(t *testing.T, addr string, opts ...grpc.DialOption) (unary, stream error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	_, unary = hc.Check(ctx, &healthpb.HealthCheckRequest{})
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	return unary, err
}

func TestMutualTLS(t *testing.T) {
	b := tlstest.New(t)
	addr := startHealth(t, tlsutil.ServerCredentials(b.ServerConfig(t)))

	for _, tc := range []struct {
		name   string
		dial   grpc.DialOption
		refuse bool
	}{
		{"client of the same CA", tlsutil.DialOption(b.ClientConfig(t, b.ClientOptions())), false},
		{"client without a certificate", tlsutil.DialOption(b.ClientConfig(t, b.NoCertClientOptions())), true},
		{"client of another CA", tlsutil.DialOption(b.ClientConfig(t, b.OtherClientOptions())), true},
		{"plaintext client", tlsutil.DialOption(nil), true},
		{"client that does not trust the server", tlsutil.DialOption(b.ClientConfig(t, tlsutil.ClientOptions{CertFile: b.Files.ClientCert, KeyFile: b.Files.ClientKey})), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unary, stream := check(t, addr, tc.dial)
			for _, err := range []error{unary, stream} {
				if tc.refuse {
					if status.Code(err) != codes.Unavailable {
						t.Fatalf("want refusal (Unavailable), got %v", err)
					}
				} else if err != nil {
					t.Fatalf("want success, got %v", err)
				}
			}
		})
	}
}

func TestMutualTLSOnIPv6AndServerName(t *testing.T) {
	b := tlstest.New(t, "flow.internal")
	lis, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	gs := grpc.NewServer(tlsutil.ServerCredentials(b.ServerConfig(t)))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	for _, o := range []tlsutil.ClientOptions{b.ClientOptions(), {CAFile: b.Files.CACert, CertFile: b.Files.ClientCert, KeyFile: b.Files.ClientKey, ServerName: "flow.internal"}} {
		if u, s := check(t, lis.Addr().String(), tlsutil.DialOption(b.ClientConfig(t, o))); u != nil || s != nil {
			t.Fatalf("ServerName %q: %v / %v", o.ServerName, u, s)
		}
	}
	o := b.ClientOptions()
	o.ServerName = "not-in-cert.example"
	if u, _ := check(t, lis.Addr().String(), tlsutil.DialOption(b.ClientConfig(t, o))); status.Code(u) != codes.Unavailable || !strings.Contains(u.Error(), "certificate") {
		t.Fatalf("wrong ServerName: %v", u)
	}
}

func TestBearerToken(t *testing.T) {
	const token = "correct horse battery staple"
	plainAddr := startHealth(t, tlsutil.TokenServerOptions(token)...)
	b := tlstest.New(t)
	tlsAddr := startHealth(t, append(tlsutil.TokenServerOptions(token), tlsutil.ServerCredentials(b.ServerConfig(t)))...)
	clientTLS := b.ClientConfig(t, b.ClientOptions())

	for _, tc := range []struct {
		name string
		addr string
		opts []grpc.DialOption
		want codes.Code
	}{
		{"right token, loopback plaintext", plainAddr, tlsutil.DialOptions(nil, token, plainAddr), codes.OK},
		{"wrong token", plainAddr, tlsutil.DialOptions(nil, "guess", plainAddr), codes.Unauthenticated},
		{"token with a wrong suffix", plainAddr, tlsutil.DialOptions(nil, token+"x", plainAddr), codes.Unauthenticated},
		{"no token", plainAddr, tlsutil.DialOptions(nil, "", plainAddr), codes.Unauthenticated},
		{"right token over mTLS", tlsAddr, tlsutil.DialOptions(clientTLS, token, tlsAddr), codes.OK},
		{"wrong token over mTLS", tlsAddr, tlsutil.DialOptions(clientTLS, "nope", tlsAddr), codes.Unauthenticated},
		{"raw header without Bearer", plainAddr, []grpc.DialOption{tlsutil.DialOption(nil), grpc.WithPerRPCCredentials(rawAuth(token))}, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unary, stream := check(t, tc.addr, tc.opts...)
			if status.Code(unary) != tc.want || status.Code(stream) != tc.want {
				t.Fatalf("unary %v, stream %v; want %v", unary, stream, tc.want)
			}
		})
	}
}

func TestTokenNeverSentInPlaintextOffLoopback(t *testing.T) {
	var seen atomic.Bool
	addr := startHealth(t, grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		seen.Store(true)
		return h(ctx, req)
	}))
	// The credentials demand TLS, as they would for a non-loopback address:
	// gRPC refuses to build the client at all.
	conn, err := grpc.NewClient(addr, tlsutil.DialOption(nil), grpc.WithPerRPCCredentials(tlsutil.TokenCredentials("secret", false)))
	if err == nil {
		conn.Close()
		t.Fatal("a plaintext client with TLS-only credentials was built")
	}
	if !strings.Contains(err.Error(), "transport") {
		t.Fatalf("want a transport-security error, got %v", err)
	}
	if seen.Load() {
		t.Fatal("the call reached the server")
	}
	// DialOptions asks for TLS when the address named is off this machine.
	if conn, err := grpc.NewClient(addr, tlsutil.DialOptions(nil, "secret", "10.0.0.1:7070")...); err == nil {
		conn.Close()
		t.Fatal("DialOptions allowed a plaintext token to a non-loopback address")
	}
}

func TestTokenExemptMethod(t *testing.T) {
	addr := startHealth(t, tlsutil.TokenServerOptions("s", "/grpc.health.v1.Health/Check")...)
	unary, stream := check(t, addr, tlsutil.DialOption(nil))
	if unary != nil {
		t.Fatalf("exempt Check: %v", unary)
	}
	if status.Code(stream) != codes.Unauthenticated {
		t.Fatalf("Watch is not exempt: %v", stream)
	}
}

// rawAuth sends the token without the Bearer scheme.
type rawAuth string

func (r rawAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(r)}, nil
}
func (rawAuth) RequireTransportSecurity() bool { return false }
