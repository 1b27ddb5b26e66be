package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

func TestParsePeer(t *testing.T) {
	cases := []struct {
		name, in, wantName string
		want               []string
		err                string
	}{
		{name: "host and port", in: "enrich=10.0.0.7:7100", wantName: "enrich", want: []string{"10.0.0.7:7100"}},
		{name: "default port", in: "enrich=enrich", wantName: "enrich", want: []string{"enrich:7000"}},
		{name: "replicas list", in: "work=127.0.0.1:7001, 127.0.0.1:7002", wantName: "work", want: []string{"127.0.0.1:7001", "127.0.0.1:7002"}},
		{name: "ipv6", in: "out=[::1]:7003", wantName: "out", want: []string{"[::1]:7003"}},
		{name: "no name", in: "=a:1", err: "NAME=HOST:PORT"},
		{name: "no address", in: "enrich", err: "NAME=HOST:PORT"},
		{name: "bad port", in: "enrich=a:99999", err: "1 to 65535"},
		{name: "no host", in: "enrich=:7000", err: "not HOST:PORT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name, p, err := ParsePeer(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParsePeer(%q) error = %v, want one containing %q", c.in, err, c.err)
				}
				return
			}
			if err != nil || name != c.wantName || !reflect.DeepEqual(p.Addrs, c.want) {
				t.Fatalf("ParsePeer(%q) = %q %v %v, want %q %v", c.in, name, p.Addrs, err, c.wantName, c.want)
			}
		})
	}
}

// TestCheckSecurity checks the refusal of plaintext off loopback on the
// addresses alone: nothing binds a non-loopback address.
func TestCheckSecurity(t *testing.T) {
	tlsAll := TLS{CertFile: "s.crt", KeyFile: "s.key", CAFile: "ca.crt"}
	local := map[string]Peer{"out": {Addrs: []string{"127.0.0.1:7001"}}}
	remote := map[string]Peer{"out": {Addrs: []string{"out:7000"}}}
	cases := []struct {
		name     string
		listen   string
		peers    map[string]Peer
		tls      TLS
		insecure bool
		listens  bool
		err      string
	}{
		{name: "loopback plaintext", listen: "127.0.0.1:7000", peers: local, listens: true},
		{name: "localhost plaintext", listen: "localhost:7000", peers: local, listens: true},
		{name: "wildcard listen refused", listen: "0.0.0.0:7000", peers: local, listens: true, err: "--listen 0.0.0.0:7000"},
		{name: "empty host listen refused", listen: ":7000", peers: local, listens: true, err: "--listen :7000"},
		{name: "remote peer refused", listen: "127.0.0.1:7000", peers: remote, listens: true, err: "--peer out=out:7000"},
		{name: "source does not listen", listen: "0.0.0.0:7000", peers: local, listens: false},
		{name: "insecure allows", listen: "0.0.0.0:7000", peers: remote, insecure: true, listens: true},
		{name: "tls allows", listen: "0.0.0.0:7000", peers: remote, tls: tlsAll, listens: true},
		{name: "tls incomplete", listen: "0.0.0.0:7000", peers: remote, tls: TLS{CertFile: "s.crt", KeyFile: "s.key"}, listens: true, err: "--tls-ca"},
		{name: "tls and insecure", listen: "0.0.0.0:7000", peers: remote, tls: tlsAll, insecure: true, listens: true, err: "contradict"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckSecurity(c.listen, c.peers, c.tls, c.insecure, c.listens)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("CheckSecurity: %v, want nil", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("CheckSecurity: %v, want an error containing %q", err, c.err)
			}
		})
	}
}

func loadExample(t *testing.T) *spec.Pipeline {
	t.Helper()
	t.Setenv("OUT_DIR", t.TempDir())
	pl, diags, err := spec.Load(filepath.Join("..", "..", "examples", "fanout-fanin.yaml"), spec.Options{Registry: components.NewRegistry()})
	if err != nil || diags.HasErrors() {
		t.Fatalf("load: %v %v", err, diags)
	}
	return pl
}

func TestDerive(t *testing.T) {
	pl := loadExample(t)
	cases := []struct {
		component string
		expected  map[string]int
		down      []string
		addrs     []string
	}{
		{component: "events", expected: map[string]int{}, down: []string{"large", "refunds", "failed"}, addrs: []string{"large:7000", "refunds:7000", "failed:7000"}},
		{component: "large", expected: map[string]int{"events": 1}, down: []string{"flag", "failed"}},
		{component: "review", expected: map[string]int{"flag": 1, "negate": 1}, down: []string{"failed"}},
		{component: "failed", expected: map[string]int{"events": 1, "large": 1, "flag": 1, "refunds": 1, "negate": 1, "review": 1}},
	}
	for _, c := range cases {
		t.Run(c.component, func(t *testing.T) {
			p, err := derive(pl, c.component, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.expected, c.expected) {
				t.Errorf("expected upstreams = %v, want %v", p.expected, c.expected)
			}
			var down, addrs []string
			for _, d := range p.downstreams {
				down = append(down, d.name)
				addrs = append(addrs, d.peer.Addrs...)
			}
			if !reflect.DeepEqual(down, c.down) {
				t.Errorf("downstreams = %v, want %v", down, c.down)
			}
			if c.addrs != nil && !reflect.DeepEqual(addrs, c.addrs) {
				t.Errorf("peer addresses = %v, want %v", addrs, c.addrs)
			}
			if len(c.expected) > 0 && (len(p.pipeline.Sources) != 1 || p.pipeline.Sources[0].Name != inboundName) {
				t.Errorf("a node with inputs must read them from one inbound source, got %v", p.pipeline.Sources)
			}
		})
	}
	if _, err := derive(pl, "nope", nil); err == nil || !strings.Contains(err.Error(), "events") {
		t.Errorf("unknown component: %v, want an error listing the components", err)
	}
	if _, err := derive(pl, "large", map[string]Peer{"review": {Addrs: []string{"x:1"}}}); err == nil || !strings.Contains(err.Error(), "not a downstream") {
		t.Errorf("--peer of a non-downstream: %v", err)
	}
}

// TestDeriveTypes: the types an input selects are applied by the sending
// node, on its edge to the downstream.
func TestDeriveTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, `name: typed
sources:
  - name: gen
    type: generate
    config: {count: 1, data: {a: 1}, event_type: ping}
sinks:
  - name: out
    type: file
    inputs: [{from: gen, types: [ping]}]
    config: {path: out.jsonl}
`)
	pl, diags, err := spec.Load(file, spec.Options{Registry: components.NewRegistry()})
	if err != nil || diags.HasErrors() {
		t.Fatalf("load: %v %v", err, diags)
	}
	p, err := derive(pl, "gen", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.pipeline.Sinks {
		if s.Name == "out" {
			got = s.Inputs[0].Types
		}
	}
	if !reflect.DeepEqual(got, []string{"ping"}) {
		t.Fatalf("sending edge types = %v, want [ping]", got)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// started is a node running in the test.
type started struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	res    Result
	err    error
}

// startNode runs a node in a goroutine and waits until it listens.
func startNode(t *testing.T, o Options) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{cancel: cancel, done: make(chan struct{})}
	listening := make(chan string, 1)
	o.OnListening = func(addr, _ string) { listening <- addr }
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.StateDir == "" {
		o.StateDir = t.TempDir()
	}
	go func() {
		defer close(s.done)
		s.res, s.err = Run(ctx, o)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	select {
	case s.addr = <-listening:
	case <-s.done:
		t.Fatalf("node %s ended before it listened: %v", o.Component, s.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s did not listen within 30s", o.Component)
	}
	return s
}

func (s *started) wait(t *testing.T, name string) Result {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s did not finish within 60s", name)
	}
	if s.err != nil {
		t.Fatalf("node %s: %v", name, s.err)
	}
	if !s.res.Completed {
		t.Fatalf("node %s stopped without completing", name)
	}
	return s.res
}

func loadFile(t *testing.T, path string) *spec.Pipeline {
	t.Helper()
	pl, diags, err := spec.Load(path, spec.Options{Registry: components.NewRegistry()})
	if err != nil || diags.HasErrors() {
		t.Fatalf("load: %v %v", err, diags)
	}
	return pl
}

// ids reads the "id" field of every line of a JSON lines file.
func ids(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var v struct{ ID int }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, v.ID)
	}
	return out
}

// TestReplicas runs generate → work (replicas: 2, two nodes) → out, all
// in this process over real gRPC on loopback: every event arrives once,
// both replicas take batches, and every node ends by itself.
func TestReplicas(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	const n = 3000
	writeFile(t, file, `name: replicas
sources:
  - name: gen
    type: generate
    config: {count: 3000, batch_size: 50, expr: '{"id": i}'}
processors:
  - name: work
    type: map
    replicas: 2
    inputs: [gen]
    config: {set: {seen: "'yes'"}}
sinks:
  - name: out
    type: file
    inputs: [work]
    config: {path: out.jsonl}
`)
	pl := loadFile(t, file)
	out := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "out"})
	peerOut := map[string]Peer{"out": {Addrs: []string{out.addr}}}
	w1 := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "work", Peers: peerOut})
	w2 := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "work", Peers: peerOut})
	// The source node has no listener; OnListening still fires, with "".
	gen := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "gen",
		Peers: map[string]Peer{"work": {Addrs: []string{w1.addr, w2.addr}}}})
	gen.wait(t, "gen")
	r1, r2 := w1.wait(t, "work#1"), w2.wait(t, "work#2")
	ro := out.wait(t, "out")
	if r1.Received == 0 || r2.Received == 0 {
		t.Errorf("replicas received %d and %d batches; want both > 0", r1.Received, r2.Received)
	}
	got := ids(t, filepath.Join(dir, "out.jsonl"))
	seen := map[int]int{}
	for _, id := range got {
		seen[id]++
	}
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("id %d written %d times, want once (%d lines)", i, seen[i], len(got))
		}
	}
	if len(got) != n {
		t.Fatalf("%d lines, want %d", len(got), n)
	}
	t.Logf("replica batches: %d + %d; sink node received %d batches", r1.Received, r2.Received, ro.Received)
}

// TestTLS joins two nodes with mutual TLS from the files `flowctl certs
// init` writes, and checks the listener refuses a plaintext client.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsutil.Init(filepath.Join(dir, "pki"), tlsutil.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, `name: tls
sources:
  - name: gen
    type: generate
    config: {count: 500, expr: '{"id": i}'}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out.jsonl}
`)
	pl := loadFile(t, file)
	certs := TLS{CertFile: files.ServerCert, KeyFile: files.ServerKey, CAFile: files.CACert}
	out := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "out", TLS: certs})

	// A plaintext client gets no stream.
	cc, err := grpc.NewClient("passthrough:///"+out.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, herr := streamv1.NewSinkServiceClient(cc).Health(ctx, &streamv1.HealthRequest{})
	cancel()
	cc.Close()
	if herr == nil {
		t.Fatal("a plaintext client was answered by a TLS node")
	}

	gen := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "gen", TLS: certs,
		Peers: map[string]Peer{"out": {Addrs: []string{out.addr}}}})
	gen.wait(t, "gen")
	out.wait(t, "out")
	if got := ids(t, filepath.Join(dir, "out.jsonl")); len(got) != 500 {
		t.Fatalf("%d events over TLS, want 500", len(got))
	}
}

// signalHandler is a slog handler that closes seen the first time a
// record's message contains want: a readiness signal taken from the logs.
type signalHandler struct {
	want string
	seen chan struct{}
	once *sync.Once
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.want) {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// TestDownstreamLate starts the source's node while its downstream node
// is not up: the sender retries, holds the source back, and once the
// downstream node starts every event arrives once.
func TestDownstreamLate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, `name: late
sources:
  - name: gen
    type: generate
    config: {count: 2000, batch_size: 100, expr: '{"id": i}'}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out.jsonl}
`)
	pl := loadFile(t, file)
	// A port nothing listens on (taken, then released).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	retrying := signalHandler{want: "downstream node not reachable", seen: make(chan struct{}), once: &sync.Once{}}
	gen := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "gen",
		Logger: slog.New(retrying), Peers: map[string]Peer{"out": {Addrs: []string{addr}}}})
	select {
	case <-retrying.seen:
	case <-time.After(30 * time.Second):
		t.Fatal("the source's node never reported its downstream unreachable")
	}
	out := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "out", Listen: addr})
	gen.wait(t, "gen")
	out.wait(t, "out")
	got := ids(t, filepath.Join(dir, "out.jsonl"))
	seen := map[int]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("id %d written twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 2000 {
		t.Fatalf("%d distinct ids, want 2000", len(seen))
	}
}

// TestInboundProtocol drives a node's SinkService.Write by hand: a stream
// from a component that is not an upstream is refused with
// INVALID_ARGUMENT, as is seq 0; the first message grants the credit, a
// redelivered batch is acknowledged (with one more credit) and counted,
// and End from the one upstream node ends the node with status OK.
func TestInboundProtocol(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, `name: proto
sources:
  - name: gen
    type: generate
    config: {count: 1, data: {a: 1}}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out.jsonl}
`)
	pl := loadFile(t, file)
	out := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "out"})
	cc, err := grpc.NewClient("passthrough:///"+out.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := streamv1.NewSinkServiceClient(cc)
	open := func(from string) (streamv1.SinkService_WriteClient, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ctx = metadata.AppendToOutgoingContext(ctx, mdFrom, from, mdNode, "test")
		w, err := client.Write(ctx)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return w, cancel
	}
	batch := func(seq uint64, redelivered bool) *streamv1.SinkRequest {
		return &streamv1.SinkRequest{Batch: &streamv1.Batch{Seq: seq, Redelivered: redelivered,
			Events: []*streamv1.Event{{Id: fmt.Sprintf("gen:%d", seq), Data: []byte(fmt.Sprintf(`{"id":%d}`, seq))}}}}
	}
	// endCode reads until the stream ends and returns its status code.
	endCode := func(w streamv1.SinkService_WriteClient) codes.Code {
		for range 1000 {
			if _, err := w.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return codes.OK
				}
				return status.Code(err)
			}
		}
		t.Fatal("stream did not end")
		return codes.OK
	}

	w, cancel := open("stranger")
	if c := endCode(w); c != codes.InvalidArgument {
		t.Errorf("stream from a non-upstream: %v, want InvalidArgument", c)
	}
	cancel()

	w, cancel = open("gen")
	_ = w.Send(batch(0, false))
	if c := endCode(w); c != codes.InvalidArgument {
		t.Errorf("seq 0: %v, want InvalidArgument", c)
	}
	cancel()

	// Credit: the first message grants inboundWindow batches.
	w, cancel = open("gen")
	m, err := w.Recv()
	if err != nil || m.GetCredit().GetBatches() != inboundWindow {
		t.Fatalf("first message %v %v, want a credit of %d", m, err, inboundWindow)
	}
	if err := w.Send(batch(7, true)); err != nil {
		t.Fatal(err)
	}
	for m, err = w.Recv(); err == nil && m.GetAck() == nil; m, err = w.Recv() {
	}
	if err != nil || m.GetAck().GetSeq() != 7 || m.GetCredit().GetBatches() != 1 {
		t.Fatalf("answer %v %v, want the ack of seq 7 with one credit", m, err)
	}
	cancel()

	// End from the only upstream node ends the node.
	w, cancel = open("gen")
	defer cancel()
	if err := w.Send(&streamv1.SinkRequest{End: &streamv1.End{Reason: "test"}}); err != nil {
		t.Fatal(err)
	}
	if c := endCode(w); c != codes.OK {
		t.Errorf("End: %v, want OK", c)
	}
	res := out.wait(t, "out")
	if res.RedeliveredBatches != 1 {
		t.Errorf("redelivered batches = %d, want 1", res.RedeliveredBatches)
	}
}

// TestDeriveOwnPeer: --peer with the node's own name makes an image or
// command component remote at that address; other components refuse it.
func TestDeriveOwnPeer(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, `name: own
sources:
  - name: gen
    type: generate
    config: {count: 1, data: {a: 1}}
processors:
  - name: img
    image: example/proc:1
    inputs: [gen]
  - name: web
    image: example/web:1
    protocol: http
    inputs: [img]
  - name: pipe
    command: [cat]
    protocol: stdio
    inputs: [web]
sinks:
  - name: out
    type: drop
    inputs: [pipe]
`)
	pl := loadFile(t, file)
	at := func(addr string) map[string]Peer { return map[string]Peer{"img": {Addrs: []string{addr}}} }
	p, err := derive(pl, "img", at("img-component:50051"))
	if err != nil {
		t.Fatal(err)
	}
	if p.self.Runner != spec.RunRemote || p.self.URL != "grpc://img-component:50051" || p.self.Protocol != "grpc" || p.self.Image != "" {
		t.Fatalf("own component = runner %q url %q protocol %q image %q; want remote grpc://img-component:50051", p.self.Runner, p.self.URL, p.self.Protocol, p.self.Image)
	}
	if orig := pl.Component("img"); orig.Runner == spec.RunRemote || orig.URL != "" {
		t.Fatal("derive changed the pipeline's own component")
	}
	if len(p.downstreams) != 1 || p.downstreams[0].name != "web" {
		t.Fatalf("downstreams = %+v, want web only", p.downstreams)
	}
	p, err = derive(pl, "web", map[string]Peer{"web": {Addrs: []string{"web-component:8080"}}})
	if err != nil || p.self.URL != "http://web-component:8080/" {
		t.Fatalf("http component: url %q, err %v", p.self.URL, err)
	}
	for _, c := range []struct{ component, peer, err string }{
		{"pipe", "pipe=x:1", "speaks stdio"},
		{"gen", "gen=x:1", "a built-in runs inside the node"},
		{"img", "img=a:1,b:2", "one address"},
	} {
		name, peer, err := ParsePeer(c.peer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := derive(pl, c.component, map[string]Peer{name: peer}); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("derive %s --peer %s: error %v, want one containing %q", c.component, c.peer, err, c.err)
		}
	}
}

// TestOwnComponentAtPeer runs an image processor's node against a Go SDK
// processor served on a loopback port without the control plane (as its
// container does under Compose): every event goes through it once.
func TestOwnComponentAtPeer(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, `name: sidecar
sources:
  - name: gen
    type: generate
    config: {count: 500, batch_size: 25, expr: '{"id": i}'}
processors:
  - name: tag
    image: example/tag:1
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [tag]
    config: {path: out.jsonl}
`)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	proc := sdk.ProcessorFunc(func(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
		return []*sdk.Event{e}, e.SetField("tagged", true)
	})
	go func() {
		served <- sdk.Serve(sctx, proc, sdk.WithListener(lis), sdk.WithEnv(func(string) string { return "" }), sdk.WithSignals(), sdk.WithLogger(slog.New(slog.DiscardHandler)))
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Error("the SDK processor did not stop within 30s")
		}
	})

	pl := loadFile(t, file)
	out := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "out"})
	tag := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "tag",
		Peers: map[string]Peer{"out": {Addrs: []string{out.addr}}, "tag": {Addrs: []string{lis.Addr().String()}}}})
	gen := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "gen",
		Peers: map[string]Peer{"tag": {Addrs: []string{tag.addr}}}})
	gen.wait(t, "gen")
	tag.wait(t, "tag")
	out.wait(t, "out")

	data, err := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, l := range lines {
		var v struct {
			ID     int
			Tagged bool
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil || !v.Tagged {
			t.Fatalf("line %q: not through the SDK processor (%v)", l, err)
		}
		seen[v.ID]++
	}
	for i := range 500 {
		if seen[i] != 1 {
			t.Fatalf("id %d written %d times, want once", i, seen[i])
		}
	}
	if len(lines) != 500 {
		t.Fatalf("%d lines, want 500", len(lines))
	}
}

// TestSinkNodeAppendsWhenRunAgain: a file sink node truncates on its first
// run, and started again with the same state directory (a restarted
// container) it appends instead of erasing what it wrote. A pipeline or
// component name with a '/' (which flowctl run takes) must not keep the
// node from starting: its marker is named as the state store is.
func TestSinkNodeAppendsWhenRunAgain(t *testing.T) {
	for _, tc := range []struct{ name, pipeline, sink string }{
		{"plain names", "again", "out"},
		{"names with slashes", "team/again", "out/main"},
		{"names with a colon and a backslash", "team:again", `out\main`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "p.yaml")
			writeFile(t, file, fmt.Sprintf(`name: %q
sources:
  - name: gen
    type: generate
    config: {count: 20, expr: '{"id": i}'}
sinks:
  - name: %q
    type: file
    inputs: [gen]
    config: {path: out.jsonl}
`, tc.pipeline, tc.sink))
			writeFile(t, filepath.Join(dir, "out.jsonl"), "{\"id\": -1}\n")
			pl := loadFile(t, file)
			sinkState := t.TempDir()
			for run := 1; run <= 2; run++ {
				out := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: tc.sink, StateDir: sinkState})
				gen := startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "gen",
					Peers: map[string]Peer{tc.sink: {Addrs: []string{out.addr}}}})
				gen.wait(t, "gen")
				out.wait(t, tc.sink)
				got := ids(t, filepath.Join(dir, "out.jsonl"))
				if len(got) != 20*run || got[0] != 0 {
					t.Fatalf("run %d: %d lines starting with id %d, want %d starting with 0", run, len(got), got[0], 20*run)
				}
			}
		})
	}
}

// TestLoopbackPlaintextWarns: a node that serves plaintext on loopback
// takes events from every user of this machine, since any of them can
// reach a loopback port; it says so before it listens (a node with TLS
// admits only peers with a certificate and says nothing of the kind).
func TestLoopbackPlaintextWarns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, `name: lo
sources:
  - name: gen
    type: generate
    config: {count: 1, data: {k: 1}}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out.jsonl}
`)
	pl := loadFile(t, file)
	warned := signalHandler{want: "any user of this machine", seen: make(chan struct{}), once: &sync.Once{}}
	startNode(t, Options{Pipeline: pl, Registry: components.NewRegistry(), Component: "out", Logger: slog.New(warned)})
	select {
	case <-warned.seen:
	default:
		t.Fatal("a node serving plaintext on loopback listened without a warning that every local user can send into it")
	}
}
