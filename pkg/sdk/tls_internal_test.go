package sdk

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
)

// TestProbe checks the probe that recovers the TLS error gRPC may hide
// behind "broken pipe" (TestControlPlaneTLS hits that path only when the
// race goes that way): against a real gRPC server with mutual TLS, and a
// plaintext one.
func TestProbe(t *testing.T) {
	b := tlstest.New(t)
	serve := func(opts ...grpc.ServerOption) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer(opts...)
		healthpb.RegisterHealthServer(gs, health.NewServer())
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
		return lis.Addr().String()
	}
	mtls := serve(tlsutil.ServerCredentials(b.ServerConfig(t)))
	plain := serve()
	closed := func() string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		return lis.Addr().String()
	}()

	for _, tc := range []struct {
		name    string
		addr    string
		client  tlsutil.ClientOptions
		plain   bool // dial without TLS
		tlsErr  bool
		mention string // in the error
	}{
		{name: "accepted", addr: mtls, client: b.ClientOptions()},
		{name: "no client cert", addr: mtls, client: b.NoCertClientOptions(), tlsErr: true, mention: "certificate required"},
		{name: "client cert of another CA", addr: mtls, client: b.OtherClientOptions(), tlsErr: true, mention: "tls:"},
		{name: "server not trusted", addr: mtls, client: tlsutil.ClientOptions{CAFile: b.OtherCA}, tlsErr: true, mention: "x509:"},
		{name: "plaintext server", addr: plain, client: b.ClientOptions(), tlsErr: true, mention: "TLS handshake"},
		{name: "nobody listening", addr: closed, client: b.ClientOptions(), mention: "refused"},
		{name: "plaintext to plaintext server", addr: plain, plain: true},
		{name: "plaintext to TLS server", addr: mtls, plain: true, tlsErr: true, mention: "closed a plaintext connection"},
		{name: "plaintext, nobody listening", addr: closed, plain: true, mention: "refused"},
		{name: "a gRPC target is left to gRPC", addr: "dns:///" + mtls, client: b.NoCertClientOptions()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg *tls.Config
			if !tc.plain {
				cfg = b.ClientConfig(t, tc.client)
			}
			err := probe(context.Background(), tc.addr, cfg)
			t.Logf("probe: %v", err)
			if got := isTLSError(err); got != tc.tlsErr {
				t.Fatalf("isTLSError(%v) = %v, want %v", err, got, tc.tlsErr)
			}
			if tc.mention == "" && err != nil {
				t.Fatalf("probe = %v, want nil", err)
			}
			if tc.mention != "" && (err == nil || !strings.Contains(err.Error(), tc.mention)) {
				t.Fatalf("probe = %v, want it to mention %q", err, tc.mention)
			}
		})
	}
}

// TestSplitEndpoint covers the schemes FLOWCTL_ENDPOINT may carry.
func TestSplitEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in, addr string
		tls      bool
	}{
		{"127.0.0.1:7070", "127.0.0.1:7070", false},
		{"tls://flow.example.com:7070", "flow.example.com:7070", true},
		{"HTTPS://flow.example.com:443/", "flow.example.com:443", true},
		{"grpc://127.0.0.1:7070", "127.0.0.1:7070", false},
		{"dns:///flow.example.com:7070", "dns:///flow.example.com:7070", false},
		{"unix:/run/flowctl.sock", "unix:/run/flowctl.sock", false},
	} {
		addr, tls := splitEndpoint(tc.in)
		if addr != tc.addr || tls != tc.tls {
			t.Errorf("splitEndpoint(%q) = %q, %v; want %q, %v", tc.in, addr, tls, tc.addr, tc.tls)
		}
	}
}
