package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// splitter is a processor with every outcome, keyed by data.n % 4:
// 0 filtered out, 1 split in two, 2 permanent failure, 3 passed on typed
// "seen".
func splitter(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	var m struct{ N int }
	if err := e.Decode(&m); err != nil {
		return nil, sdk.Permanent(err)
	}
	switch m.N % 4 {
	case 0:
		return nil, nil
	case 1:
		a, b := e.Clone(), e.Clone()
		a.ID += "-a"
		b.ID += "-b"
		return []*sdk.Event{a, b}, nil
	case 2:
		return nil, sdk.Permanent(errors.New("n % 4 == 2"))
	default:
		e.Type = "seen"
		return []*sdk.Event{e}, nil
	}
}

// checkSplitter checks a Result of splitter for batch.
func checkSplitter(t *testing.T, batch []*flow.Event, res Result) {
	t.Helper()
	if len(res.Outputs) != len(batch) {
		t.Fatalf("%d output slots for %d inputs", len(res.Outputs), len(batch))
	}
	for i, in := range batch {
		var m struct{ N int }
		json.Unmarshal(in.Data, &m)
		outs, ferr := res.Outputs[i], res.Failures[i]
		switch m.N % 4 {
		case 0:
			if len(outs) != 0 || ferr != nil {
				t.Fatalf("input %d (n=%d): got %v %v, want filtered", i, m.N, outs, ferr)
			}
		case 1:
			if len(outs) != 2 || outs[0].ID != in.ID+"-a" || outs[1].ID != in.ID+"-b" || ferr != nil {
				t.Fatalf("input %d (n=%d): got %v %v, want split", i, m.N, outs, ferr)
			}
		case 2:
			if len(outs) != 0 || !errors.Is(ferr, ErrPermanent) || !strings.Contains(ferr.Error(), "n % 4 == 2") {
				t.Fatalf("input %d (n=%d): got %v %v, want a permanent failure", i, m.N, outs, ferr)
			}
		case 3:
			if len(outs) != 1 || outs[0].ID != in.ID || outs[0].Type != "seen" || string(outs[0].Data) != string(in.Data) || ferr != nil {
				t.Fatalf("input %d (n=%d): got %v %v, want passed on", i, m.N, outs, ferr)
			}
		}
	}
}

func TestGRPCProcessorAnswersEveryBatch(t *testing.T) {
	cases := []struct {
		name     string
		proto    Protocol
		batches  int
		size     int
		parallel int
		streams  int
	}{
		{"grpc one at a time", grpcProtocol{}, 20, 256, 1, 1},
		{"grpc many in flight", grpcProtocol{}, 200, 37, 8, 1},
		{"grpc several streams", grpcProtocol{}, 200, 37, 8, 4},
		{"auto", autoProtocol{}, 20, 100, 4, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt := newGRPCRuntime(t)
			inst := instance(t, "proc", flow.RoleProcessor)
			inst.Component.Parallelism = c.streams
			serveSDK(t, rt, "proc", sdk.ProcessorFunc(splitter))
			conns := readyConns(t, c.proto, rt, inst)
			if pc, ok := conns.Processor.(*grpcProcessorConn); !ok || len(pc.streams) != c.streams {
				t.Fatalf("conn is %T, want the native one with %d streams", conns.Processor, c.streams)
			}
			var wg sync.WaitGroup
			errs := make(chan error, c.batches)
			next := make(chan int, c.batches)
			for b := range c.batches {
				next <- b
			}
			close(next)
			for range c.parallel {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for b := range next {
						batch := jsonBatch(fmt.Sprintf("b%d", b), c.size, nil)
						res, err := conns.Processor.Process(testCtx(t), batch)
						if err != nil {
							errs <- err
							return
						}
						checkSplitter(t, batch, res)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

// scriptedProcessor is a hand-written native ProcessorService: each
// stream grants `initial` credits, hands every batch to the test on
// received, and answers a batch (echoing its events, one more credit)
// each time the test sends on answer. breakAfter > 0 ends the first
// stream with UNAVAILABLE, unanswered, after that many batches.
type scriptedProcessor struct {
	streamv1.UnimplementedProcessorServiceServer
	initial    uint32
	maxBatch   uint32
	received   chan *streamv1.Batch
	answer     chan struct{}
	breakAfter int
	autoAnswer atomic.Bool

	mu      sync.Mutex
	streams int
}

func (s *scriptedProcessor) GetInfo(context.Context, *streamv1.InfoRequest) (*streamv1.ComponentInfo, error) {
	return &streamv1.ComponentInfo{Name: "scripted", Role: streamv1.Role_ROLE_PROCESSOR, MaxBatch: s.maxBatch, ProtocolVersion: 1}, nil
}

func (s *scriptedProcessor) Process(stream streamv1.ProcessorService_ProcessServer) error {
	s.mu.Lock()
	s.streams++
	n := s.streams
	s.mu.Unlock()
	if err := stream.Send(&streamv1.ProcessResponse{Credit: &streamv1.Credit{Batches: s.initial}}); err != nil {
		return err
	}
	pending := make(chan *streamv1.Batch, 1024)
	answerErr := make(chan error, 1)
	go func() {
		for b := range pending {
			if !s.autoAnswer.Load() {
				select {
				case <-s.answer:
				case <-stream.Context().Done():
					answerErr <- stream.Context().Err()
					return
				}
			}
			res := &streamv1.Result{Seq: b.GetSeq()}
			for i, e := range b.GetEvents() {
				res.Outputs = append(res.Outputs, &streamv1.Output{InputIndex: uint32(i), Event: e})
			}
			if err := stream.Send(&streamv1.ProcessResponse{Result: res, Credit: &streamv1.Credit{Batches: 1}}); err != nil {
				answerErr <- err
				return
			}
		}
		answerErr <- nil
	}()
	got := 0
	for {
		m, err := stream.Recv()
		if err != nil {
			close(pending)
			if errors.Is(err, io.EOF) {
				return <-answerErr
			}
			return err
		}
		s.received <- m.GetBatch()
		got++
		if n == 1 && s.breakAfter > 0 && got == s.breakAfter {
			close(pending)
			return status.Error(codes.Unavailable, "broken on purpose")
		}
		pending <- m.GetBatch()
	}
}

func startScripted(t *testing.T, s *scriptedProcessor) string {
	if s.received == nil {
		s.received = make(chan *streamv1.Batch, 1024)
	}
	if s.answer == nil {
		s.answer = make(chan struct{}, 1024)
	}
	addr, _ := serveGRPC(t, func(gs *grpc.Server) { streamv1.RegisterProcessorServiceServer(gs, s) })
	return addr
}

func connectScripted(t *testing.T, addr string) ProcessorConn {
	t.Helper()
	conns, err := ConnectGRPC(testCtx(t), addr, flow.RoleProcessor, grpcLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conns.Close() })
	return conns.Processor
}

// recvBatch waits for the scripted processor to receive a batch.
func recvBatch(t *testing.T, ch <-chan *streamv1.Batch) *streamv1.Batch {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch arrived")
		return nil
	}
}

// quiet checks that nothing arrives on ch for a while.
func quiet(t *testing.T, ch <-chan *streamv1.Batch, why string) {
	t.Helper()
	select {
	case b := <-ch:
		t.Fatalf("%s: batch seq %d arrived", why, b.GetSeq())
	case <-time.After(300 * time.Millisecond):
	}
}

func TestGRPCNeverSendsWithoutCredit(t *testing.T) {
	s := &scriptedProcessor{initial: 2}
	conn := connectScripted(t, startScripted(t, s))
	const calls = 6
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			_, err := conn.Process(testCtx(t), jsonBatch(fmt.Sprint(i), 3, nil))
			errs <- err
		}()
	}
	seqs := map[uint64]bool{}
	for range 2 {
		seqs[recvBatch(t, s.received).GetSeq()] = true
	}
	quiet(t, s.received, "credit 2 is used up")
	s.answer <- struct{}{} // answer one: one credit back
	seqs[recvBatch(t, s.received).GetSeq()] = true
	quiet(t, s.received, "the one credit returned is used up")
	for range calls - 1 {
		s.answer <- struct{}{}
	}
	for range calls - 3 {
		seqs[recvBatch(t, s.received).GetSeq()] = true
	}
	for range calls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(seqs) != calls {
		t.Fatalf("seqs %v: want %d distinct", seqs, calls)
	}
}

func TestGRPCRedeliversWithSameSeqAfterBrokenStream(t *testing.T) {
	s := &scriptedProcessor{initial: 4, breakAfter: 2}
	addr := startScripted(t, s)
	first := connectScripted(t, addr)

	batches := [][]*flow.Event{jsonBatch("x", 2, nil), jsonBatch("y", 3, nil)}
	ctxs := []context.Context{WithDelivery(testCtx(t)), WithDelivery(testCtx(t))}
	errs := make(chan error, 2)
	for i := range batches {
		go func() {
			_, err := first.Process(ctxs[i], batches[i])
			errs <- err
		}()
	}
	firstSeqs := map[uint64]int{}
	for range 2 {
		b := recvBatch(t, s.received)
		if b.GetRedelivered() {
			t.Fatalf("first delivery of seq %d marked redelivered", b.GetSeq())
		}
		firstSeqs[b.GetSeq()] = len(b.GetEvents())
	}
	for range 2 {
		err := <-errs
		if err == nil || status.Code(errors.Unwrap(err)) == codes.OK && !strings.Contains(err.Error(), "broken on purpose") {
			t.Fatalf("Process on the broken stream: %v, want the stream's error", err)
		}
	}
	// A new stream (the next incarnation): the same batches come again
	// with the same seqs, marked redelivered, and are answered.
	s.autoAnswer.Store(true)
	second := connectScripted(t, addr)
	for i := range batches {
		res, err := second.Process(ctxs[i], batches[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Outputs) != len(batches[i]) || res.Outputs[0][0].ID != batches[i][0].ID {
			t.Fatalf("redelivered batch %d answered with %v", i, res.Outputs)
		}
	}
	for range 2 {
		b := recvBatch(t, s.received)
		if n, ok := firstSeqs[b.GetSeq()]; !ok || n != len(b.GetEvents()) || !b.GetRedelivered() {
			t.Fatalf("redelivery seq %d redelivered=%v with %d events; first deliveries %v", b.GetSeq(), b.GetRedelivered(), len(b.GetEvents()), firstSeqs)
		}
	}
	// Without WithDelivery a batch is a new delivery each time.
	if _, err := second.Process(testCtx(t), batches[0]); err != nil {
		t.Fatal(err)
	}
	if b := recvBatch(t, s.received); firstSeqs[b.GetSeq()] != 0 || b.GetRedelivered() {
		t.Fatalf("a fresh delivery reused seq %d (redelivered=%v)", b.GetSeq(), b.GetRedelivered())
	}
}

func TestGRPCSplitsBatchesAtMaxBatch(t *testing.T) {
	s := &scriptedProcessor{initial: 3, maxBatch: 10}
	s.autoAnswer.Store(true)
	conn := connectScripted(t, startScripted(t, s))
	batch := jsonBatch("m", 256, nil)
	res, err := conn.Process(testCtx(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range batch {
		if len(res.Outputs[i]) != 1 || res.Outputs[i][0].ID != in.ID {
			t.Fatalf("output %d: %v", i, res.Outputs[i])
		}
	}
	chunks := 0
	for len(s.received) > 0 {
		if b := <-s.received; len(b.GetEvents()) > 10 {
			t.Fatalf("chunk of %d events, max_batch 10", len(b.GetEvents()))
		}
		chunks++
	}
	if chunks != 26 {
		t.Fatalf("%d chunks, want 26", chunks)
	}
}

// blocker is an SDK processor that holds every event until released.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blocker) Process(ctx context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []*sdk.Event{e}, nil
}

func TestGRPCDrain(t *testing.T) {
	rt := newGRPCRuntime(t)
	inst := instance(t, "drainer", flow.RoleProcessor)
	b := &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
	stop, done := serveSDK(t, rt, "drainer", b)
	conn := readyConns(t, grpcProtocol{}, rt, inst).Processor

	type answer struct {
		res Result
		err error
	}
	first := make(chan answer, 1)
	go func() {
		res, err := conn.Process(testCtx(t), jsonBatch("d", 1, nil))
		first <- answer{res, err}
	}()
	<-b.entered
	stop() // the component drains: Drain, then it answers what it has
	c := conn.(*grpcProcessorConn).streams[0]
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		draining := c.draining
		c.mu.Unlock()
		if draining {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Drain did not arrive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := conn.Process(testCtx(t), jsonBatch("late", 1, nil)); !errors.Is(err, errDraining) {
		t.Fatalf("Process while draining: %v, want errDraining", err)
	}
	close(b.release)
	a := <-first
	if a.err != nil || len(a.res.Outputs[0]) != 1 {
		t.Fatalf("the batch in flight at the drain: %v %v, want it answered", a.res, a.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the component did not finish its drain once flowctl closed its side")
	}
}

// recordingSink fails events whose data has "fail".
type recordingSink struct {
	mu  sync.Mutex
	ids []string
}

func (s *recordingSink) Write(_ context.Context, events []*sdk.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	failed := map[int]error{}
	for i, e := range events {
		if strings.Contains(string(e.Data), "fail") {
			failed[i] = errors.New("asked to fail")
			continue
		}
		s.ids = append(s.ids, e.ID)
	}
	if len(failed) > 0 {
		return &sdk.BatchError{Failed: failed}
	}
	return nil
}

func TestGRPCSinkAcksWithFailures(t *testing.T) {
	rt := newGRPCRuntime(t)
	inst := instance(t, "out", flow.RoleSink)
	sink := &recordingSink{}
	serveSDK(t, rt, "out", sink)
	conn := readyConns(t, grpcProtocol{}, rt, inst).Sink

	want := 0
	for b := range 20 {
		batch := jsonBatch(fmt.Sprint("s", b), 50, func(i int) string {
			if i%10 == 3 {
				return `,"fail":true`
			}
			return ""
		})
		failures, err := conn.Write(testCtx(t), batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(failures) != 5 {
			t.Fatalf("batch %d: failures %v, want 5", b, failures)
		}
		for i, err := range failures {
			if i%10 != 3 || !strings.Contains(err.Error(), "asked to fail") || errors.Is(err, ErrPermanent) {
				t.Fatalf("failure %d: %v", i, err)
			}
		}
		want += 45
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.ids) != want {
		t.Fatalf("sink wrote %d events, want %d", len(sink.ids), want)
	}
}

// countingSource emits count events in batches of size, then returns.
func countingSource(count, size int) sdk.SourceFunc {
	return func(ctx context.Context, emit sdk.EmitFunc) error {
		for i := 0; i < count; i += size {
			var batch []*sdk.Event
			for j := i; j < min(i+size, count); j++ {
				batch = append(batch, &sdk.Event{ID: fmt.Sprint("e", j), Type: "t", Data: []byte(fmt.Sprintf(`{"n":%d}`, j))})
			}
			if err := emit(ctx, batch...); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestGRPCSourceAcksAndRedelivery(t *testing.T) {
	rt := newGRPCRuntime(t)
	serveSDK(t, rt, "in", countingSource(1000, 100))
	ctx := testCtx(t)

	// The first stream takes three batches and breaks without acking.
	first := readyConns(t, grpcProtocol{}, rt, instance(t, "in", flow.RoleSource)).Source
	unacked := map[uint64]int{}
	for range 3 {
		seq, batch, err := first.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		unacked[seq] = len(batch)
	}
	first.Close()
	if _, _, err := first.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v, want ErrClosed", err)
	}

	// The next stream gets them again, same seqs, then the rest; acked
	// as they come. Credits keep at most sourceWindow unacked.
	// Same process, so its registration from before counts (zero Started).
	again := instance(t, "in", flow.RoleSource)
	again.Started = time.Time{}
	second := readyConns(t, grpcProtocol{}, rt, again).Source
	ids := map[string]bool{}
	var order []uint64
	for {
		seq, batch, err := second.Recv(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, seq)
		for _, e := range batch {
			ids[e.ID] = true
		}
		if err := second.Ack(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids) != 1000 {
		t.Fatalf("%d distinct events, want 1000", len(ids))
	}
	if len(order) != 10 {
		t.Fatalf("%d batches %v, want 10", len(order), order)
	}
	for _, seq := range order[:3] {
		if _, ok := unacked[seq]; !ok {
			t.Fatalf("the first batches of the new stream are %v, want the unacked %v again", order[:3], unacked)
		}
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}

// buildSDKProcessor builds examples/sdk-processor into dir.
func buildSDKProcessor(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sdk-processor")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/sdk-processor")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build examples/sdk-processor: %v\n%s", err, out)
	}
	return bin
}

// greedySource is a hand-written native source that ignores credit.
type greedySource struct {
	streamv1.UnimplementedSourceServiceServer
}

func (greedySource) GetInfo(context.Context, *streamv1.InfoRequest) (*streamv1.ComponentInfo, error) {
	return &streamv1.ComponentInfo{Name: "greedy", Role: streamv1.Role_ROLE_SOURCE}, nil
}

func (greedySource) Health(context.Context, *streamv1.HealthRequest) (*streamv1.HealthResponse, error) {
	return &streamv1.HealthResponse{Status: streamv1.HealthStatus_HEALTH_STATUS_DEGRADED, Message: "greedy"}, nil
}

func (greedySource) Read(stream streamv1.SourceService_ReadServer) error {
	for seq := uint64(1); seq <= 100; seq++ {
		err := stream.Send(&streamv1.SourceResponse{Batch: &streamv1.Batch{Seq: seq, Events: []*streamv1.Event{{Id: fmt.Sprint(seq)}}}})
		if err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

func TestGRPCSourceBeyondCreditEndsTheStream(t *testing.T) {
	addr, _ := serveGRPC(t, func(gs *grpc.Server) { streamv1.RegisterSourceServiceServer(gs, greedySource{}) })
	conns, err := ConnectGRPC(testCtx(t), addr, flow.RoleSource, grpcLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	n := 0
	for {
		_, _, err := conns.Source.Recv(testCtx(t))
		if err != nil {
			if !strings.Contains(err.Error(), "without credit") {
				t.Fatalf("Recv: %v, want a credit violation", err)
			}
			break
		}
		n++
	}
	if n > sourceWindow {
		t.Fatalf("took %d batches with %d credits", n, sourceWindow)
	}
}

func TestInfoAndHealthHelpers(t *testing.T) {
	addr, _ := serveGRPC(t, func(gs *grpc.Server) {
		streamv1.RegisterSourceServiceServer(gs, greedySource{})
		flowctlv1.RegisterProcessorServiceServer(gs, &v1Processor{})
	})
	cc, err := DialEndpoint(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := testCtx(t)
	if info, err := GRPCInfo(ctx, cc, flow.RoleSource); err != nil || info.GetName() != "greedy" {
		t.Fatalf("GRPCInfo: %v %v", info, err)
	}
	if h, err := GRPCHealth(ctx, cc, flow.RoleSource); err != nil || h.GetStatus() != streamv1.HealthStatus_HEALTH_STATUS_DEGRADED {
		t.Fatalf("GRPCHealth: %v %v", h, err)
	}
	if _, err := GRPCInfo(ctx, cc, flow.RoleSink); status.Code(errors.Unwrap(err)) != codes.Unimplemented {
		t.Fatalf("GRPCInfo of a service not served: %v", err)
	}
	if info, err := V1Info(ctx, cc, flow.RoleProcessor); err != nil || info.GetId() != "v1proc" {
		t.Fatalf("V1Info: %v %v", info, err)
	}
	if _, err := V1Health(ctx, cc, flow.RoleProcessor); status.Code(errors.Unwrap(err)) != codes.Unimplemented {
		t.Fatalf("V1Health of a processor without HealthCheck: %v", err)
	}
}

func TestStreamEventMappingRoundTrips(t *testing.T) {
	when := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	cases := []struct {
		name string
		e    *flow.Event
	}{
		{"every attribute", &flow.Event{ID: "a", Source: "s", Type: "t", Subject: "sub", DataContentType: "text/plain",
			Time: when, Data: []byte("x"), Metadata: map[string]string{"k": "v"}}},
		{"only an id", &flow.Event{ID: "b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := eventsToStream([]*flow.Event{c.e})[0]
			if (w.Time == nil) != c.e.Time.IsZero() {
				t.Fatalf("time %v for %v", w.Time, c.e.Time)
			}
			got := eventFromStream(w)
			if got.ID != c.e.ID || got.Source != c.e.Source || got.Type != c.e.Type || got.Subject != c.e.Subject ||
				got.DataContentType != c.e.DataContentType || !got.Time.Equal(c.e.Time) || string(got.Data) != string(c.e.Data) ||
				len(got.Metadata) != len(c.e.Metadata) || got.Metadata["k"] != c.e.Metadata["k"] {
				t.Fatalf("round trip: got %+v, want %+v", got, c.e)
			}
		})
	}
}
