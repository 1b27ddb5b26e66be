package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// behaviourProcessor does what the event's type says.
var behaviourProcessor = sdk.ProcessorFunc(func(ctx context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	switch e.Type {
	case "keep":
		e.Type = "kept"
		return []*sdk.Event{e}, nil
	case "split":
		a, b := e.Clone(), e.Clone()
		a.ID, b.ID = e.ID+"/a", e.ID+"/b"
		return []*sdk.Event{a, b}, nil
	case "filter":
		return nil, nil
	case "fail":
		return nil, errors.New("boom")
	case "bad":
		return nil, sdk.Permanent(errors.New("bad input"))
	case "panic":
		panic("oops")
	case "seq":
		b, ok := sdk.BatchInfo(ctx)
		if !ok {
			return nil, errors.New("no batch info")
		}
		e.Data = []byte(fmt.Sprintf(`{"seq":%d,"redelivered":%v}`, b.Seq, b.Redelivered))
		return []*sdk.Event{e}, nil
	}
	return nil, fmt.Errorf("unknown type %q", e.Type)
})

// recvCredit reads the stream's first message, which must grant credit.
func recvCredit(t *testing.T, s streamv1.ProcessorService_ProcessClient) uint32 {
	t.Helper()
	m, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if m.GetCredit() == nil || m.GetResult() != nil {
		t.Fatalf("first message %v: want a credit grant only", m)
	}
	return m.GetCredit().GetBatches()
}

// TestProcessorAnswersEveryBatchExactlyOnce drives a processor like flowctl
// does, never exceeding the credit, and checks each batch is answered once
// with outputs tagged by input index and failures where expected.
func TestProcessorAnswersEveryBatchExactlyOnce(t *testing.T) {
	h := start(t, behaviourProcessor, nil, sdk.WithInitialCredit(3))
	ctx := ctxT(t)
	s, err := streamv1.NewProcessorServiceClient(h.conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	credit := int(recvCredit(t, s))
	if credit != 3 {
		t.Fatalf("initial credit %d, want 3", credit)
	}

	types := []string{"keep", "split", "filter", "fail", "bad", "panic", "seq"}
	const batches = 40
	sent, inFlight, maxInFlight := 0, 0, 0
	answers := map[uint64]*streamv1.Result{}
	for len(answers) < batches {
		for credit > 0 && sent < batches {
			sent++
			evs := make([]*streamv1.Event, len(types))
			for i, ty := range types {
				evs[i] = &streamv1.Event{Id: fmt.Sprintf("b%d-%d", sent, i), Type: ty, Data: []byte(`{}`)}
			}
			if err := s.Send(&streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: uint64(sent), Events: evs}}); err != nil {
				t.Fatal(err)
			}
			credit--
			inFlight++
			maxInFlight = max(maxInFlight, inFlight)
		}
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		credit += int(m.GetCredit().GetBatches())
		if r := m.GetResult(); r != nil {
			if _, dup := answers[r.GetSeq()]; dup {
				t.Fatalf("seq %d answered twice", r.GetSeq())
			}
			answers[r.GetSeq()] = r
			inFlight--
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v, want the stream to end cleanly", err)
	}
	if maxInFlight != 3 {
		t.Fatalf("max in flight %d, want the credit (3) to be used fully", maxInFlight)
	}

	for seq := uint64(1); seq <= batches; seq++ {
		r := answers[seq]
		if r == nil {
			t.Fatalf("seq %d not answered", seq)
		}
		var outs []string
		for _, o := range r.GetOutputs() {
			outs = append(outs, fmt.Sprintf("%d:%s:%s", o.GetInputIndex(), o.GetEvent().GetType(), o.GetEvent().GetId()))
		}
		want := fmt.Sprintf("0:kept:b%[1]d-0 1:split:b%[1]d-1/a 1:split:b%[1]d-1/b 6:seq:b%[1]d-6", seq)
		if got := strings.Join(outs, " "); got != want {
			t.Fatalf("seq %d outputs:\n got %s\nwant %s", seq, got, want)
		}
		if got := string(r.GetOutputs()[3].GetEvent().GetData()); got != fmt.Sprintf(`{"seq":%d,"redelivered":false}`, seq) {
			t.Fatalf("BatchInfo seen by Process: %s", got)
		}
		var fails []string
		for _, f := range r.GetFailures() {
			fails = append(fails, fmt.Sprintf("%d:%v", f.GetIndex(), f.GetPermanent()))
		}
		if got := strings.Join(fails, " "); got != "3:false 4:true 5:true" {
			t.Fatalf("seq %d failures %s, want 3 (retryable), 4 and 5 (permanent)", seq, got)
		}
	}
}

// blockingProcessor holds every event until release is closed.
type blockingProcessor struct {
	started atomic.Int64
	release chan struct{}
}

func (b *blockingProcessor) Process(ctx context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	b.started.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []*sdk.Event{e}, nil
}

// TestProcessorRefusesBatchesBeyondCredit: a peer that sends more batches
// than granted gets its stream ended with RESOURCE_EXHAUSTED (the documented
// refusal); sequence-number misuse ends it with INVALID_ARGUMENT.
func TestProcessorRefusesBatchesBeyondCredit(t *testing.T) {
	cases := []struct {
		name string
		seqs []uint64
		want codes.Code
	}{
		{"one beyond the credit of 2", []uint64{1, 2, 3}, codes.ResourceExhausted},
		{"seq 0", []uint64{0}, codes.InvalidArgument},
		{"same seq twice while unanswered", []uint64{5, 5}, codes.InvalidArgument},
	}
	p := &blockingProcessor{release: make(chan struct{})}
	defer close(p.release)
	h := start(t, p, map[string]string{sdk.EnvInitialCredit: "2"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := streamv1.NewProcessorServiceClient(h.conn).Process(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := recvCredit(t, s); got != 2 {
				t.Fatalf("initial credit %d, want 2 from %s", got, sdk.EnvInitialCredit)
			}
			for _, seq := range c.seqs {
				if err := s.Send(&streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: seq, Events: jsonEvents("x", 1)}}); err != nil {
					break // the server may already have ended the stream
				}
			}
			for {
				m, err := s.Recv()
				if err != nil {
					if status.Code(err) != c.want {
						t.Fatalf("stream ended with %v, want %v", err, c.want)
					}
					return
				}
				if m.GetResult() != nil {
					t.Fatalf("got a result while the processor is blocked: %v", m)
				}
			}
		})
	}
}

// TestGetInfoAndHealth checks what a component says about itself.
func TestGetInfoAndHealth(t *testing.T) {
	info := sdk.Info{
		Name: "enricher", Version: "0.3.1", Description: "adds fields",
		InputTypes: []string{"payment"}, OutputTypes: []string{"payment.enriched"},
		ConfigFields: []sdk.ConfigField{{Name: "rate", Type: "float", Required: true, Description: "FX rate"}},
	}
	h := start(t, behaviourProcessor, nil, sdk.WithInfo(info))
	ctx := ctxT(t)
	c := streamv1.NewProcessorServiceClient(h.conn)
	got, err := c.GetInfo(ctx, &streamv1.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetName() != "enricher" || got.GetVersion() != "0.3.1" || got.GetRole() != streamv1.Role_ROLE_PROCESSOR ||
		got.GetInputEventTypes()[0] != "payment" || got.GetConfigFields()[0].GetName() != "rate" || got.GetProtocolVersion() != 1 {
		t.Fatalf("GetInfo = %v", got)
	}
	hr, err := c.Health(ctx, &streamv1.HealthRequest{})
	if err != nil || hr.GetStatus() != streamv1.HealthStatus_HEALTH_STATUS_HEALTHY {
		t.Fatalf("Health = %v, %v", hr, err)
	}
	e, _ := h.cp.Registry().Get(h.id)
	if e.Name != "enricher" || e.Role != "processor" || e.OutputTypes[0] != "payment.enriched" {
		t.Fatalf("registration = %+v", e)
	}
	// A sink service is not served by a processor.
	_, err = streamv1.NewSinkServiceClient(h.conn).GetInfo(ctx, &streamv1.InfoRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("sink GetInfo on a processor: %v, want Unimplemented", err)
	}
}

// TestHeartbeatsAndDeregister: the SDK heartbeats within its TTL and
// deregisters when Serve's context ends.
func TestHeartbeatsAndDeregister(t *testing.T) {
	h := start(t, behaviourProcessor, nil)
	reg := h.cp.Registry()
	first, _ := reg.Get(h.id)
	if first.TTL != 300*time.Millisecond {
		t.Fatalf("TTL %v, want 3 heartbeat intervals (300ms)", first.TTL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, _ := reg.Get(h.id)
		if e.LastHeartbeat.After(first.LastHeartbeat) && e.Metrics["batches"] == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat with metrics within 5s at a 100ms interval")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.stop()
	if err := h.wait(); err != nil {
		t.Fatalf("Serve after its context ended: %v, want nil", err)
	}
	if _, ok := reg.Get(h.id); ok {
		t.Fatal("still registered after Serve returned")
	}
}

// TestExitsWhenFlowctlIsGone: once the control plane is unreachable for
// LostAfter heartbeat intervals, Serve returns ErrFlowctlGone.
func TestExitsWhenFlowctlIsGone(t *testing.T) {
	h := start(t, behaviourProcessor, nil, sdk.WithLostAfter(2))
	began := time.Now()
	h.cp.Stop()
	err := h.wait()
	if !errors.Is(err, sdk.ErrFlowctlGone) {
		t.Fatalf("Serve = %v, want ErrFlowctlGone", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("took %v to notice, want about 2 intervals (200ms)", d)
	}
}

// TestServeRejectsBadSetup: errors a user gets before anything runs.
func TestServeRejectsBadSetup(t *testing.T) {
	both := struct {
		sdk.ProcessorFunc
		sdk.SinkFunc
	}{}
	cases := []struct {
		name      string
		component any
		env       map[string]string
		want      string
	}{
		{"no role", 42, nil, "implements none of"},
		{"two roles", both, nil, "more than one"},
		{"enabled without endpoint", behaviourProcessor, map[string]string{sdk.EnvEnable: "true", sdk.EnvComponentID: "x"}, sdk.EnvEndpoint + " is empty"},
		{"enabled without id", behaviourProcessor, map[string]string{sdk.EnvEnable: "true", sdk.EnvEndpoint: "127.0.0.1:1"}, sdk.EnvComponentID + " is empty"},
		{"bad interval", behaviourProcessor, map[string]string{sdk.EnvHeartbeatInterval: "soon"}, "want a duration"},
		{"bad credit", behaviourProcessor, map[string]string{sdk.EnvInitialCredit: "0"}, "at least 1"},
		{"unusable PORT", behaviourProcessor, map[string]string{sdk.EnvPort: "127.0.0.1:-1"}, "listen on"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := sdk.Serve(context.Background(), c.component, sdk.WithEnv(func(k string) string { return c.env[k] }), sdk.WithSignals())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Serve = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestStreamTokenGuardsTheComponentsPort: with FLOWCTL_STREAM_TOKEN set,
// a call without the token, or with another one, is refused on every
// method (the unary GetInfo and the Process stream), and one with it is
// served. flowctl sends the token; another user of the machine who finds
// the port does not know it.
func TestStreamTokenGuardsTheComponentsPort(t *testing.T) {
	const token = "s3cret-stream-token"
	h := start(t, behaviourProcessor, map[string]string{sdk.EnvStreamToken: token})
	cases := []struct {
		name   string
		header string // "" sends no authorization
		want   codes.Code
	}{
		{"no token", "", codes.Unauthenticated},
		{"another token", "Bearer not-it", codes.Unauthenticated},
		{"not a bearer", "Basic " + token, codes.Unauthenticated},
		{"the token", "Bearer " + token, codes.OK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := ctxT(t)
			if c.header != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.header)
			}
			cl := streamv1.NewProcessorServiceClient(h.conn)
			_, err := cl.GetInfo(ctx, &streamv1.InfoRequest{})
			if got := status.Code(err); got != c.want {
				t.Fatalf("GetInfo: %v (%v), want %v", got, err, c.want)
			}
			s, err := cl.Process(ctx)
			if err == nil {
				// The stream's refusal arrives with its first receive.
				_, err = s.Recv()
			}
			if got := status.Code(err); got != c.want {
				t.Fatalf("Process: %v (%v), want %v", got, err, c.want)
			}
		})
	}
}
