package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/flowctl/flowctl/internal/backoff"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// Metadata keys a sending node puts on every Write stream, so that the
// receiving node knows which upstream component (and which node of it)
// the batches and the End come from.
const (
	mdFrom = "flowctl-from"
	mdNode = "flowctl-node"
)

// retryPolicy is the backoff of a sender whose downstream node is
// unreachable or broke the stream: it never gives up (the batch is held,
// and with it the upstream), it only waits longer, up to 5 s.
var retryPolicy = backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: backoff.DefaultJitter}

// refreshAfter is how many batches a stream carries before the sender
// replaces it with a new one. Writes are sequential, so nothing is in
// flight on it then. The balancer places each new stream on the next
// ready replica, so batches spread over replicas that were not ready when
// the first streams opened, or were added since.
const refreshAfter = 16

// errDrained says the downstream node sent Drain on the stream: it takes
// no new batch there; the batch goes on another stream.
var errDrained = errors.New("downstream node is draining")

// sender pushes this node's output for one downstream component to that
// component's node(s) over SinkService.Write. It is the flow.Sink the
// engine sees in place of the downstream component.
//
// A Write sends the batch with a fresh seq and blocks until the downstream
// node acknowledged it, which that node does only once everything derived
// from it is done there: so the engine here acknowledges its own upstream
// only then (at-least-once across nodes). A broken stream or an
// unreachable node is retried with backoff, for ever, with the same seq
// and redelivered=true; meanwhile the engine's queues fill up and the
// upstream is held back.
type sender struct {
	to, from, nodeID string
	peer             Peer
	tlsCfg           *tls.Config
	log              *slog.Logger
	nstreams         int

	cc *grpc.ClientConn

	// seq starts at the node's start time in nanoseconds, so a restarted
	// node never reuses the seq of a batch it sent in an earlier life.
	seq atomic.Uint64

	mu      sync.Mutex
	streams []*outStream
	next    int

	redelivered atomic.Int64
}

func newSender(to, from, nodeID string, peer Peer, streams int, tlsCfg *tls.Config, log *slog.Logger) *sender {
	s := &sender{to: to, from: from, nodeID: nodeID, peer: peer, tlsCfg: tlsCfg,
		log: log.With("peer", to, "addr", strings.Join(peer.Addrs, ",")), nstreams: max(streams, len(peer.Addrs), 1)}
	s.seq.Store(uint64(time.Now().UnixNano()))
	s.streams = make([]*outStream, s.nstreams)
	return s
}

// dialOptions are the options of every connection to a downstream node:
// TLS or plaintext, flowctl's message limit, keepalive (a peer that
// vanished without closing its connection is found within ~15 s).
func dialOptions(cfg *tls.Config) []grpc.DialOption {
	return []grpc.DialOption{
		tlsutil.DialOption(cfg),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(external.MaxMessageSize), grpc.MaxCallSendMsgSize(external.MaxMessageSize)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
	}
}

// Open implements flow.Opener: it makes the client connection. Dialing
// does not block; a peer that is not up yet is waited for by Write.
func (s *sender) Open(context.Context) error {
	cfg := s.tlsCfg
	opts := dialOptions(cfg)
	var target string
	if len(s.peer.Addrs) == 1 {
		// dns:/// resolves every address of the name (the replicas
		// behind one service name) and round_robin spreads the streams.
		target = "dns:///" + s.peer.Addrs[0]
	} else {
		r := manual.NewBuilderWithScheme("flowctl-peer")
		addrs := make([]resolver.Address, len(s.peer.Addrs))
		for i, a := range s.peer.Addrs {
			addrs[i] = resolver.Address{Addr: a}
		}
		r.InitialState(resolver.State{Addresses: addrs})
		opts = append(opts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///" + s.to
		if cfg != nil && cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = hostOf(s.peer.Addrs[0])
			opts[0] = tlsutil.DialOption(cfg)
		}
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return fmt.Errorf("connect to the node of %q at %s: %w", s.to, strings.Join(s.peer.Addrs, ","), err)
	}
	s.cc = cc
	return nil
}

// Close implements flow.Closer.
func (s *sender) Close(context.Context) error {
	s.mu.Lock()
	for i, st := range s.streams {
		if st != nil {
			st.shutdown()
			s.streams[i] = nil
		}
	}
	s.mu.Unlock()
	if s.cc != nil {
		return s.cc.Close()
	}
	return nil
}

// Write implements flow.Sink. It blocks until the downstream node
// acknowledged the batch, or ctx ends (the batch is then not
// acknowledged upstream either, and comes again after a restart).
func (s *sender) Write(ctx context.Context, batch []*flow.Event) error {
	if len(batch) == 0 {
		return nil
	}
	b := &streamv1.Batch{Seq: s.seq.Add(1), Events: external.EventsToStream(batch)}
	bo := backoff.New(retryPolicy)
	for {
		st, err := s.stream(ctx)
		sent := false
		if err == nil {
			sent, err = st.roundTrip(ctx, b)
		}
		if err == nil {
			if bo.Failures() > 0 {
				s.log.Info("downstream node reachable again", "attempts", bo.Failures()+1)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("send to the node of %q: %w", s.to, ctx.Err())
		}
		if sent && !b.Redelivered {
			b.Redelivered = true
			s.redelivered.Add(1)
		}
		wait := bo.Next()
		if n := bo.Failures(); n == 1 || n%20 == 0 {
			s.log.Warn("downstream node not reachable; holding the batch and retrying", "err", err, "attempt", n, "wait", wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("send to the node of %q: %w", s.to, ctx.Err())
		}
	}
}

// stream returns the next usable stream in turn, opening it if it is
// broken or not open yet: batches alternate over the streams, and the
// balancer put the streams on different replicas.
func (s *sender) stream(ctx context.Context) (*outStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var firstErr error
	for range s.nstreams {
		i := s.next % s.nstreams
		s.next++
		st := s.streams[i]
		if st != nil && st.usable() {
			return st, nil
		}
		if st != nil {
			st.shutdown()
			s.streams[i] = nil
		}
		st, err := s.open(ctx)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		s.streams[i] = st
		return st, nil
	}
	return nil, firstErr
}

func (s *sender) open(ctx context.Context) (*outStream, error) {
	if s.cc == nil {
		return nil, errors.New("sender not open")
	}
	sctx, cancel := context.WithCancel(context.Background())
	sctx = metadata.AppendToOutgoingContext(sctx, mdFrom, s.from, mdNode, s.nodeID)
	stop := context.AfterFunc(ctx, cancel) // opening is bounded by ctx; the stream then lives on
	w, err := streamv1.NewSinkServiceClient(s.cc).Write(sctx)
	stop()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open a Write stream to the node of %q: %w", s.to, err)
	}
	st := &outStream{stream: w, cancel: cancel, wake: make(chan struct{}),
		waiting: map[uint64]chan error{}, done: make(chan struct{})}
	go st.recvLoop()
	return st, nil
}

// Redelivered returns how many batches this sender sent again after a
// stream broke before their ack.
func (s *sender) Redelivered() int64 { return s.redelivered.Load() }

// outStream is one Write stream to a downstream node: batches out under
// the credit it grants, acks in.
type outStream struct {
	stream streamv1.SinkService_WriteClient
	cancel context.CancelFunc
	sendMu sync.Mutex

	mu       sync.Mutex
	credit   int64
	wake     chan struct{} // closed and replaced when credit, err or draining change
	waiting  map[uint64]chan error
	err      error
	draining bool
	done     chan struct{}
	sent     int // batches sent on it
}

// usable reports whether the next batch may go on this stream: not
// broken, not draining, not due for replacement (refreshAfter).
func (o *outStream) usable() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err == nil && !o.draining && o.sent < refreshAfter
}

func (o *outStream) wakeLocked() {
	close(o.wake)
	o.wake = make(chan struct{})
}

func (o *outStream) recvLoop() {
	defer close(o.done)
	for {
		m, err := o.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			o.fail(fmt.Errorf("write stream: %w", err))
			return
		}
		o.mu.Lock()
		o.credit += int64(m.GetCredit().GetBatches())
		if m.GetDrain() != nil {
			o.draining = true
		}
		var ch chan error
		if a := m.GetAck(); a != nil {
			ch = o.waiting[a.GetSeq()]
			delete(o.waiting, a.GetSeq())
		}
		o.wakeLocked()
		o.mu.Unlock()
		if ch != nil {
			var err error
			if f := m.GetAck().GetFailures(); len(f) > 0 {
				// A node acknowledges only what it finished (failures went
				// to its own on_error); a failure list is a protocol error.
				err = fmt.Errorf("downstream node acknowledged seq %d with %d failures: %s", m.GetAck().GetSeq(), len(f), f[0].GetError())
			}
			ch <- err
		}
	}
}

func (o *outStream) fail(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	waiting := o.waiting
	o.waiting = map[uint64]chan error{}
	o.wakeLocked()
	o.mu.Unlock()
	for _, ch := range waiting {
		ch <- err
	}
}

// roundTrip sends b once credit allows and waits for its ack. sent says
// whether b went out (a failure after that makes the next try a
// redelivery).
func (o *outStream) roundTrip(ctx context.Context, b *streamv1.Batch) (sent bool, err error) {
	ch := make(chan error, 1)
	for {
		o.mu.Lock()
		switch {
		case o.err != nil:
			err := o.err
			o.mu.Unlock()
			return false, err
		case o.draining:
			o.mu.Unlock()
			return false, errDrained
		case o.credit > 0:
			o.credit--
			o.sent++
			o.waiting[b.GetSeq()] = ch
			o.mu.Unlock()
			o.sendMu.Lock()
			err := o.stream.Send(&streamv1.SinkRequest{Batch: b})
			o.sendMu.Unlock()
			if err != nil {
				o.mu.Lock()
				delete(o.waiting, b.GetSeq())
				o.mu.Unlock()
				o.cancel()
				return false, fmt.Errorf("send batch seq %d: %w", b.GetSeq(), err)
			}
			select {
			case err := <-ch:
				return true, err
			case <-ctx.Done():
				return true, ctx.Err()
			}
		}
		wake := o.wake
		o.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (o *outStream) shutdown() {
	o.sendMu.Lock()
	_ = o.stream.CloseSend()
	o.sendMu.Unlock()
	o.cancel()
	<-o.done
}

// endAddrs returns every address End must reach: each address of the
// list, or, for one address whose host is a name, each address the name
// resolves to when the downstream has replicas (they all wait for it).
func (s *sender) endAddrs(ctx context.Context, replicas int) ([]endTarget, error) {
	if len(s.peer.Addrs) > 1 || replicas <= 1 {
		out := make([]endTarget, len(s.peer.Addrs))
		for i, a := range s.peer.Addrs {
			out[i] = endTarget{addr: a, serverName: hostOf(s.peer.Addrs[0])}
		}
		return out, nil
	}
	host, port, err := net.SplitHostPort(s.peer.Addrs[0])
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) != nil {
		return []endTarget{{addr: s.peer.Addrs[0], serverName: host}}, nil
	}
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	out := make([]endTarget, len(ips))
	for i, ip := range ips {
		out[i] = endTarget{addr: net.JoinHostPort(ip, port), serverName: host}
	}
	return out, nil
}

// endTarget is one address End goes to, and the name its certificate
// must carry.
type endTarget struct{ addr, serverName string }

// sendEnd tells every node of the downstream component that this node
// sends nothing more, retrying each until it answered (OK) or ctx ends.
func (s *sender) sendEnd(ctx context.Context, replicas int, reason string) error {
	bo := backoff.New(retryPolicy)
	for {
		targets, err := s.endAddrs(ctx, replicas)
		if err == nil {
			var errs []error
			for _, t := range targets {
				if err := s.endOne(ctx, t, reason); err != nil {
					errs = append(errs, err)
				}
			}
			if err = errors.Join(errs...); err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("send End to the node of %q: %w (last: %v)", s.to, ctx.Err(), err)
		}
		wait := bo.Next()
		if n := bo.Failures(); n == 1 || n%20 == 0 {
			s.log.Warn("could not send End downstream; retrying", "err", err, "wait", wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("send End to the node of %q: %w (last: %v)", s.to, ctx.Err(), err)
		}
	}
}

// endOne sends End on a stream of its own to one address: nodes that
// already received it answer OK again, so sending twice is harmless.
func (s *sender) endOne(ctx context.Context, t endTarget, reason string) error {
	cfg := s.tlsCfg
	if cfg != nil && cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = t.serverName
	}
	opts := dialOptions(cfg)
	cc, err := grpc.NewClient("passthrough:///"+t.addr, opts...)
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cctx = metadata.AppendToOutgoingContext(cctx, mdFrom, s.from, mdNode, s.nodeID)
	w, err := streamv1.NewSinkServiceClient(cc).Write(cctx)
	if err != nil {
		return fmt.Errorf("%s: %w", t.addr, err)
	}
	if err := w.Send(&streamv1.SinkRequest{End: &streamv1.End{Reason: reason}}); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", t.addr, err)
	}
	_ = w.CloseSend()
	for range 1 << 20 { // credits may come before the end of the stream
		if _, err := w.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: %w", t.addr, err)
		}
	}
	return fmt.Errorf("%s: no end of stream after End", t.addr)
}

// hostOf returns the host of host:port (addr itself if it has no port).
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

var (
	_ flow.Sink   = (*sender)(nil)
	_ flow.Opener = (*sender)(nil)
	_ flow.Closer = (*sender)(nil)
)
