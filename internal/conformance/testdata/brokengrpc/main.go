// Command brokengrpc is a deliberately broken flowctl processor speaking the
// native gRPC protocol (flowctl.stream.v1) without the SDK, so that it can
// break the rules the SDK enforces. `flowctl component test` must fail on
// each mode:
//
//	acks-twice   answers every batch twice
//	no-credit    grants credit but reads every batch it is sent into an
//	             unbounded queue, answering from it at its own pace
//	ignore-term  ignores SIGTERM (otherwise correct)
//	never-ack    reads batches and never answers them
//	ok           behaves (the control case)
//
// Usage: brokengrpc MODE. It reads PORT, ENABLE_FLOWCTL, FLOWCTL_ENDPOINT,
// FLOWCTL_COMPONENT_ID and FLOWCTL_TOKEN (sent as `authorization: Bearer`)
// like any component.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

const initialCredit = 4

type processor struct {
	streamv1.UnimplementedProcessorServiceServer
	mode     string
	draining atomic.Bool
	drainCh  chan struct{}
}

func (p *processor) GetInfo(context.Context, *streamv1.InfoRequest) (*streamv1.ComponentInfo, error) {
	return &streamv1.ComponentInfo{Name: "brokengrpc-" + p.mode, Version: "0.0.1",
		Role: streamv1.Role_ROLE_PROCESSOR, ProtocolVersion: 1}, nil
}

func (p *processor) Health(context.Context, *streamv1.HealthRequest) (*streamv1.HealthResponse, error) {
	if p.draining.Load() {
		return &streamv1.HealthResponse{Status: streamv1.HealthStatus_HEALTH_STATUS_STOPPING}, nil
	}
	return &streamv1.HealthResponse{Status: streamv1.HealthStatus_HEALTH_STATUS_HEALTHY}, nil
}

func (p *processor) Process(stream streamv1.ProcessorService_ProcessServer) error {
	var mu sync.Mutex
	send := func(m *streamv1.ProcessResponse) error {
		mu.Lock()
		defer mu.Unlock()
		return stream.Send(m)
	}
	if err := send(&streamv1.ProcessResponse{Credit: &streamv1.Credit{Batches: initialCredit}}); err != nil {
		return err
	}
	go func() {
		select {
		case <-p.drainCh:
			_ = send(&streamv1.ProcessResponse{Drain: &streamv1.Drain{Reason: "SIGTERM"}})
		case <-stream.Context().Done():
		}
	}()
	answer := func(b *streamv1.Batch) error {
		res := &streamv1.Result{Seq: b.Seq}
		for i, e := range b.Events {
			res.Outputs = append(res.Outputs, &streamv1.Output{InputIndex: uint32(i), Event: e})
		}
		if err := send(&streamv1.ProcessResponse{Result: res, Credit: &streamv1.Credit{Batches: 1}}); err != nil {
			return err
		}
		if p.mode == "acks-twice" {
			return send(&streamv1.ProcessResponse{Result: res})
		}
		return nil
	}
	if p.mode == "no-credit" {
		return p.queueAll(stream, answer)
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		b := req.GetBatch()
		if b == nil || p.mode == "never-ack" {
			continue
		}
		if err := answer(b); err != nil {
			return err
		}
	}
}

// queueAll is the no-credit bug: a reader that takes every batch into an
// unbounded queue, and a writer that answers from it.
func (p *processor) queueAll(stream streamv1.ProcessorService_ProcessServer, answer func(*streamv1.Batch) error) error {
	var (
		mu    sync.Mutex
		queue []*streamv1.Batch
		more  = make(chan struct{}, 1)
		ended = make(chan error, 1)
	)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				ended <- err
				return
			}
			if b := req.GetBatch(); b != nil {
				mu.Lock()
				queue = append(queue, b)
				mu.Unlock()
				select {
				case more <- struct{}{}:
				default:
				}
			}
		}
	}()
	for {
		mu.Lock()
		var b *streamv1.Batch
		if len(queue) > 0 {
			b, queue = queue[0], queue[1:]
		}
		mu.Unlock()
		if b != nil {
			if err := answer(b); err != nil {
				return err
			}
			continue
		}
		select {
		case <-more:
		case err := <-ended:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: brokengrpc acks-twice|no-credit|ignore-term|never-ack|ok")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "brokengrpc:", err)
		os.Exit(1)
	}
}

func run(mode string) error {
	term := make(chan os.Signal, 1)
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM) // and do not Notify it, which would undo this
		signal.Notify(term, syscall.SIGINT)
	} else {
		signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	}
	addr := os.Getenv("PORT")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	p := &processor{mode: mode, drainCh: make(chan struct{})}
	gs := grpc.NewServer()
	streamv1.RegisterProcessorServiceServer(gs, p)
	go func() { _ = gs.Serve(lis) }()

	id := os.Getenv("FLOWCTL_COMPONENT_ID")
	var cp streamv1.ControlPlaneServiceClient
	if ep := os.Getenv("FLOWCTL_ENDPOINT"); os.Getenv("ENABLE_FLOWCTL") == "true" && ep != "" {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if tok := os.Getenv("FLOWCTL_TOKEN"); tok != "" {
			// The run's control plane refuses native calls without its
			// token: what any component written without the SDK must send.
			opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
				return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), method, req, reply, cc, o...)
			}))
		}
		conn, err := grpc.NewClient(ep, opts...)
		if err != nil {
			return err
		}
		defer conn.Close()
		cp = streamv1.NewControlPlaneServiceClient(conn)
		reg := &streamv1.Registration{Id: id, Role: streamv1.Role_ROLE_PROCESSOR, Endpoint: lis.Addr().String(),
			Name: "brokengrpc-" + mode, Ttl: durationpb.New(time.Minute)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cp.Register(ctx, &streamv1.RegisterRequest{Registration: reg}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
	fmt.Fprintln(os.Stderr, "brokengrpc: serving", mode, "on", lis.Addr())
	<-term
	p.draining.Store(true)
	close(p.drainCh)
	if cp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = cp.Deregister(ctx, &streamv1.DeregisterRequest{Id: id})
		cancel()
	}
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		gs.Stop()
	}
	return nil
}
