package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

func TestV1EventMappingRoundTrips(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := []struct {
		name string
		v1   *flowctlv1.Event
		// flow is the event inside flowctl.
		flow *flow.Event
	}{
		{
			name: "every field",
			v1: &flowctlv1.Event{Id: "e1", Type: "payment", Payload: []byte(`{"a":1}`), Metadata: map[string]string{"k": "v"},
				Timestamp: timestamppb.New(when), SourceComponentId: "ledger", ContentType: "application/json"},
			flow: &flow.Event{ID: "e1", Type: "payment", Data: []byte(`{"a":1}`), Metadata: map[string]string{"k": "v"},
				Time: when, Source: "ledger", DataContentType: "application/json"},
		},
		{
			name: "stellar cursor",
			v1: &flowctlv1.Event{Id: "e2", Type: "ledger", Payload: []byte("x"), Metadata: map[string]string{"k": "v"},
				StellarCursor: &flowctlv1.StellarCursor{LedgerSequence: 51234567, IndexInLedger: 12}},
			flow: &flow.Event{ID: "e2", Type: "ledger", Data: []byte("x"), Metadata: map[string]string{"k": "v", StellarCursorKey: "51234567:12"}},
		},
		{
			name: "stellar cursor alone",
			v1:   &flowctlv1.Event{Id: "e3", StellarCursor: &flowctlv1.StellarCursor{LedgerSequence: 1}},
			flow: &flow.Event{ID: "e3", Metadata: map[string]string{StellarCursorKey: "1:0"}},
		},
		{
			name: "no time, no metadata",
			v1:   &flowctlv1.Event{Id: "e4", Type: "t", Payload: []byte("{}")},
			flow: &flow.Event{ID: "e4", Type: "t", Data: []byte("{}")},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := eventFromV1(proto.Clone(c.v1).(*flowctlv1.Event))
			if got.ID != c.flow.ID || got.Type != c.flow.Type || string(got.Data) != string(c.flow.Data) ||
				!got.Time.Equal(c.flow.Time) || got.Source != c.flow.Source || got.DataContentType != c.flow.DataContentType ||
				!maps.Equal(got.Metadata, c.flow.Metadata) {
				t.Fatalf("from flowctl.v1: got %+v, want %+v", got, c.flow)
			}
			back := eventToV1(got)
			if !proto.Equal(back, c.v1) {
				t.Fatalf("round trip: got %v, want %v", back, c.v1)
			}
			if !proto.Equal(eventToV1(c.flow), c.v1) {
				t.Fatalf("to flowctl.v1: got %v, want %v", eventToV1(c.flow), c.v1)
			}
		})
	}
}

func TestV1EventMappingEdges(t *testing.T) {
	t.Run("malformed cursor stays metadata", func(t *testing.T) {
		e := &flow.Event{ID: "x", Metadata: map[string]string{StellarCursorKey: "not-a-cursor"}}
		w := eventToV1(e)
		if w.StellarCursor != nil || w.Metadata[StellarCursorKey] != "not-a-cursor" {
			t.Fatalf("got %v", w)
		}
	})
	t.Run("event metadata is not modified", func(t *testing.T) {
		md := map[string]string{StellarCursorKey: "5:6", "k": "v"}
		w := eventToV1(&flow.Event{ID: "x", Metadata: md})
		if len(md) != 2 || w.GetStellarCursor().GetIndexInLedger() != 6 || !maps.Equal(w.Metadata, map[string]string{"k": "v"}) {
			t.Fatalf("metadata %v, wire %v", md, w)
		}
	})
	t.Run("subject does not cross", func(t *testing.T) {
		if w := eventToV1(&flow.Event{ID: "x", Subject: "s"}); w.String() != (&flowctlv1.Event{Id: "x"}).String() {
			t.Fatalf("got %v", w)
		}
	})
	for _, s := range []string{"1", "a:1", "1:a", "1:4294967296", ""} {
		if _, err := parseStellarCursor(s); err == nil {
			t.Errorf("parseStellarCursor(%q) accepted it", s)
		}
	}
}

// v1Processor is a hand-written flowctl.v1 ProcessorService, written the
// way components of the earlier flowctl are: it handles each event as it
// arrives. data.n % 4: 0 filtered, 1 split into id-a and id-b, 2 one event
// with a new id, 3 passed on typed "seen" with the cursor kept. atEOF
// says what it does once flowctl closes its side: "nil" returns nil,
// "eof" returns Recv's io.EOF, "never" keeps the stream open. crashAt > 0
// ends the stream with INTERNAL on the event with that n.
type v1Processor struct {
	flowctlv1.UnimplementedProcessorServiceServer
	atEOF   string
	crashAt int

	mu      sync.Mutex
	streams int
	events  int
}

func (p *v1Processor) GetInfo(context.Context, *emptypb.Empty) (*flowctlv1.ComponentInfo, error) {
	return &flowctlv1.ComponentInfo{Id: "v1proc", Type: flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR}, nil
}

func (p *v1Processor) Process(stream flowctlv1.ProcessorService_ProcessServer) error {
	p.mu.Lock()
	p.streams++
	p.mu.Unlock()
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			switch p.atEOF {
			case "eof":
				return err
			case "never":
				<-stream.Context().Done()
				return nil
			}
			return nil
		}
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.events++
		p.mu.Unlock()
		var m struct{ N int }
		json.Unmarshal(ev.GetPayload(), &m)
		if p.crashAt > 0 && m.N == p.crashAt {
			return status.Error(codes.Internal, "crashed on purpose")
		}
		var outs []*flowctlv1.Event
		switch m.N % 4 {
		case 1:
			a, b := proto.Clone(ev).(*flowctlv1.Event), proto.Clone(ev).(*flowctlv1.Event)
			a.Id += "-a"
			b.Id += "-b"
			outs = append(outs, a, b)
		case 2:
			outs = append(outs, &flowctlv1.Event{Id: fmt.Sprint("new-", m.N), Type: "derived", Payload: ev.GetPayload()})
		case 3:
			o := proto.Clone(ev).(*flowctlv1.Event)
			o.Type = "seen"
			outs = append(outs, o)
		}
		for _, o := range outs {
			if err := stream.Send(o); err != nil {
				return err
			}
		}
	}
}

// startV1 serves p and registers it as id through flowctl.v1.
func startV1(t *testing.T, rt *Runtime, id string, role flow.Role, reg func(*grpc.Server)) {
	t.Helper()
	addr, _ := serveGRPC(t, reg)
	registerV1(t, rt, id, role, addr)
}

func TestV1ProcessorAttributesOutputs(t *testing.T) {
	cases := []struct {
		name  string
		proto Protocol
		atEOF string
	}{
		{"flowctl-v1, handler returns nil", v1Protocol{}, "nil"},
		{"flowctl-v1, handler returns io.EOF", v1Protocol{}, "eof"},
		{"auto", autoProtocol{}, "nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt := newGRPCRuntime(t)
			inst := instance(t, "v1proc", flow.RoleProcessor)
			p := &v1Processor{atEOF: c.atEOF}
			startV1(t, rt, "v1proc", flow.RoleProcessor, func(gs *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(gs, p) })
			conn := readyConns(t, c.proto, rt, inst).Processor
			if _, ok := conn.(*v1ProcessorConn); !ok {
				t.Fatalf("conn is %T, want the flowctl.v1 one", conn)
			}
			// One batch at a time, as one worker sends them: outputs
			// without an input's id count against the input of the
			// output before them, the batch's first input at its start.
			for b := range 3 {
				batch := jsonBatch(fmt.Sprint("s", b), 40, nil)
				batch[3] = &flow.Event{ID: batch[3].ID, Type: "t", Data: batch[3].Data, Metadata: map[string]string{StellarCursorKey: "7:3"}}
				res, err := conn.Process(testCtx(t), batch)
				if err != nil {
					t.Fatal(err)
				}
				checkV1Result(t, batch, res)
			}
			// Several batches at once share the worker's stream: every
			// output arrives, and an output with its input's id counts
			// against that input.
			var wg sync.WaitGroup
			var mu sync.Mutex
			total := 0
			for b := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					batch := jsonBatch(fmt.Sprint("b", b), 40, nil)
					res, err := conn.Process(testCtx(t), batch)
					if err != nil {
						t.Error(err)
						return
					}
					n := 0
					for i, outs := range res.Outputs {
						n += len(outs)
						if i%4 == 3 && !slices.ContainsFunc(outs, func(o *flow.Event) bool { return o.ID == batch[i].ID }) {
							t.Errorf("batch %d input %d: outputs %v lack its own", b, i, outs)
						}
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}()
			}
			wg.Wait()
			// An answer that came after flowctl settled its input (a
			// stall longer than the grace) rides with the next batch.
			res, err := conn.Process(testCtx(t), jsonBatch("flush", 4, nil))
			if err != nil {
				t.Fatal(err)
			}
			for _, outs := range res.Outputs {
				total += len(outs)
			}
			if total != 12*40+4 {
				t.Errorf("%d outputs for 12 batches and one more, want %d", total, 12*40+4)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.streams != 1 {
				t.Fatalf("%d Process streams for 16 batches, want one long-lived stream", p.streams)
			}
		})
	}
}

func checkV1Result(t *testing.T, batch []*flow.Event, res Result) {
	t.Helper()
	if len(res.Failures) != 0 {
		t.Errorf("failures %v", res.Failures)
	}
	for i, in := range batch {
		outs := res.Outputs[i]
		var ids []string
		for _, o := range outs {
			ids = append(ids, o.ID)
		}
		var want []string
		switch i % 4 {
		case 1:
			// The split halves have ids of their own, so they count
			// against the input before (which has none of its own).
		case 2:
			want = []string{}
		case 0:
			// Input 0 yields nothing itself; 4, 8, ... get the output
			// without a matching id of input i-2 and the halves of i-3.
		case 3:
			want = []string{in.ID}
			if i+2 < len(batch) {
				want = append(want, batch[i+2].ID+"-a", batch[i+2].ID+"-b")
			}
			want = append(want, fmt.Sprint("new-", i+3))
			if i+3 >= len(batch) {
				want = want[:len(want)-1]
			}
		}
		if i < 3 {
			// Before the first output with a matching id, everything
			// counts against input 0.
			continue
		}
		if want != nil && !reflect.DeepEqual(ids, want) && !(len(want) == 0 && len(ids) == 0) {
			t.Errorf("input %d (%s): outputs %v, want %v", i, in.ID, ids, want)
		}
		if i == 3 && (len(outs) == 0 || outs[0].Metadata[StellarCursorKey] != "7:3" || outs[0].Type != "seen") {
			t.Errorf("input 3: %v, want the cursor kept", outs)
		}
	}
	total := 0
	for _, o := range res.Outputs {
		total += len(o)
	}
	// 10 split (x2), 10 new, 10 seen, 10 filtered.
	if total != 40 {
		t.Errorf("%d outputs, want 40", total)
	}
}

func TestV1ProcessorBrokenStreamIsNotAnAnswer(t *testing.T) {
	rt := newGRPCRuntime(t)
	inst := instance(t, "v1crash", flow.RoleProcessor)
	p := &v1Processor{crashAt: 5}
	startV1(t, rt, "v1crash", flow.RoleProcessor, func(gs *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(gs, p) })
	conn := readyConns(t, v1Protocol{}, rt, inst).Processor
	_, err := conn.Process(testCtx(t), jsonBatch("c", 10, nil))
	if status.Code(errors.Unwrap(err)) != codes.Internal {
		t.Fatalf("Process: %v, want the stream's INTERNAL error (the batch is redelivered)", err)
	}
	// The stream was the incarnation's: later batches are not sent on
	// it (the supervisor restarts the component and sends them there).
	if _, err := conn.Process(testCtx(t), jsonBatch("ok", 4, nil)); !errors.Is(err, ErrNotSent) {
		t.Fatalf("Process on a broken conn: %v, want ErrNotSent", err)
	}
	conn.Close()
	if _, err := conn.Process(testCtx(t), jsonBatch("closed", 1, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Process after Close: %v, want ErrClosed", err)
	}
}

func TestV1ProcessorThatNeverEndsItsStream(t *testing.T) {
	old := v1CloseWait
	v1CloseWait = 200 * time.Millisecond
	t.Cleanup(func() { v1CloseWait = old })
	rt := newGRPCRuntime(t)
	inst := instance(t, "v1never", flow.RoleProcessor)
	p := &v1Processor{atEOF: "never"}
	startV1(t, rt, "v1never", flow.RoleProcessor, func(gs *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(gs, p) })
	conn := readyConns(t, v1Protocol{}, rt, inst).Processor
	res, err := conn.Process(testCtx(t), jsonBatch("n", 8, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs[3]) == 0 {
		t.Fatalf("outputs %v: want what arrived", res.Outputs)
	}
	// Close half-closes the stream; a component that never ends it is
	// cut off after v1CloseWait.
	start := time.Now()
	conn.Close()
	if d := time.Since(start); d < v1CloseWait || d > 5*time.Second {
		t.Fatalf("Close took %v, want about %v", d, v1CloseWait)
	}
}

// v1Consumer is a hand-written flowctl.v1 ConsumerService; it fails
// events whose payload contains "fail".
type v1Consumer struct {
	flowctlv1.UnimplementedConsumerServiceServer
	mu  sync.Mutex
	ids []string
}

func (c *v1Consumer) Consume(stream flowctlv1.ConsumerService_ConsumeServer) error {
	var resp flowctlv1.ConsumeResponse
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&resp)
		}
		if err != nil {
			return err
		}
		if strings.Contains(string(ev.GetPayload()), "fail") {
			resp.EventsFailed++
			resp.Errors = append(resp.Errors, "cannot store "+ev.GetId())
			continue
		}
		c.mu.Lock()
		c.ids = append(c.ids, ev.GetId())
		c.mu.Unlock()
		resp.EventsConsumed++
	}
}

func TestV1Consumer(t *testing.T) {
	rt := newGRPCRuntime(t)
	inst := instance(t, "v1sink", flow.RoleSink)
	c := &v1Consumer{}
	startV1(t, rt, "v1sink", flow.RoleSink, func(gs *grpc.Server) { flowctlv1.RegisterConsumerServiceServer(gs, c) })
	conn := readyConns(t, autoProtocol{}, rt, inst).Sink
	if _, ok := conn.(*v1ConsumerConn); !ok {
		t.Fatalf("conn is %T", conn)
	}
	cases := []struct {
		name      string
		fail      func(i int) bool
		failures  int
		permanent bool
	}{
		{"all written", func(int) bool { return false }, 0, false},
		{"all failed", func(int) bool { return true }, 10, false},
		{"some failed: all reported, permanently", func(i int) bool { return i == 4 }, 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			batch := jsonBatch(tc.name, 10, func(i int) string {
				if tc.fail(i) {
					return `,"fail":true`
				}
				return ""
			})
			failures, err := conn.Write(testCtx(t), batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(failures) != tc.failures {
				t.Fatalf("failures %v, want %d", failures, tc.failures)
			}
			for _, err := range failures {
				if errors.Is(err, ErrPermanent) != tc.permanent || !strings.Contains(err.Error(), "cannot store") {
					t.Fatalf("failure %v (permanent want %v)", err, tc.permanent)
				}
			}
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) != 19 {
		t.Fatalf("consumer stored %d events, want 19", len(c.ids))
	}
}

// v1Source is a hand-written flowctl.v1 SourceService sending count
// events, then ending the stream.
type v1Source struct {
	flowctlv1.UnimplementedSourceServiceServer
	count  int
	params chan map[string]string
}

func (s *v1Source) StreamEvents(req *flowctlv1.StreamRequest, stream flowctlv1.SourceService_StreamEventsServer) error {
	s.params <- req.GetParams()
	for i := range s.count {
		ev := &flowctlv1.Event{Id: fmt.Sprint("s", i), Type: "t", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			StellarCursor: &flowctlv1.StellarCursor{LedgerSequence: uint64(100 + i/10), IndexInLedger: uint32(i % 10)}}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

func TestV1Source(t *testing.T) {
	rt := newGRPCRuntime(t)
	inst := instance(t, "v1src", flow.RoleSource)
	inst.Component.Config = flow.Config{"network": "testnet", "start_ledger": 100}
	s := &v1Source{count: 2000, params: make(chan map[string]string, 1)}
	startV1(t, rt, "v1src", flow.RoleSource, func(gs *grpc.Server) { flowctlv1.RegisterSourceServiceServer(gs, s) })
	conn := readyConns(t, v1Protocol{}, rt, inst).Source
	if p := <-s.params; !maps.Equal(p, map[string]string{"network": "testnet", "start_ledger": "100"}) {
		t.Fatalf("params %v", p)
	}
	n := 0
	var last uint64
	for {
		seq, batch, err := conn.Recv(testCtx(t))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last || len(batch) == 0 || len(batch) > flow.MaxBatch {
			t.Fatalf("seq %d after %d, %d events", seq, last, len(batch))
		}
		last = seq
		for _, e := range batch {
			if e.ID != fmt.Sprint("s", n) || e.Metadata[StellarCursorKey] != fmt.Sprintf("%d:%d", 100+n/10, n%10) {
				t.Fatalf("event %d: %+v", n, e)
			}
			n++
		}
		if err := conn.Ack(testCtx(t), seq); err != nil {
			t.Fatal(err)
		}
	}
	if n != 2000 {
		t.Fatalf("%d events, want 2000", n)
	}
}

func TestProtocolMismatchIsExplained(t *testing.T) {
	rt := newGRPCRuntime(t)
	registerV1(t, rt, "old", flow.RoleProcessor, "127.0.0.1:1")
	registerNative(t, rt, "new", flow.RoleProcessor, "127.0.0.1:1")
	registerNative(t, rt, "sink", flow.RoleSink, "127.0.0.1:1")
	cases := []struct {
		name  string
		proto Protocol
		id    string
		role  flow.Role
		want  string
	}{
		{"grpc for a flowctl.v1 component", grpcProtocol{}, "old", flow.RoleProcessor, "protocol: flowctl-v1"},
		{"flowctl-v1 for a native component", v1Protocol{}, "new", flow.RoleProcessor, "protocol: grpc"},
		{"wrong role", grpcProtocol{}, "sink", flow.RoleProcessor, "registered as a sink"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inst := instance(t, c.id, c.role)
			inst.Started = time.Time{}
			_, err := c.proto.Ready(testCtx(t), rt, inst)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Ready: %v, want it to say %q", err, c.want)
			}
		})
	}
	t.Run("exits before registering", func(t *testing.T) {
		inst := instance(t, "ghost", flow.RoleProcessor)
		exited := make(chan struct{})
		close(exited)
		inst.Exited = exited
		_, err := grpcProtocol{}.Ready(testCtx(t), rt, inst)
		if err == nil || !strings.Contains(err.Error(), "exited before it registered") {
			t.Fatalf("Ready: %v", err)
		}
	})
	t.Run("startup timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := v1Protocol{}.Ready(ctx, rt, instance(t, "late", flow.RoleProcessor))
		if err == nil || !strings.Contains(err.Error(), "did not register") {
			t.Fatalf("Ready: %v", err)
		}
	})
}

func TestLocalEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		":50051":          "127.0.0.1:50051",
		"0.0.0.0:1":       "127.0.0.1:1",
		"[::]:2":          "127.0.0.1:2",
		"localhost:3":     "localhost:3",
		"10.0.0.1:4":      "10.0.0.1:4",
		"not an endpoint": "not an endpoint",
	} {
		if got := localEndpoint(in); got != want {
			t.Errorf("localEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}
