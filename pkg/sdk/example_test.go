package sdk_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// quietly keeps the examples' output to what they print. A real component
// keeps the default logger (stderr) and takes everything else from the
// environment flowctl sets.
func quietly(lis net.Listener) []sdk.Option {
	noEnv := func(string) string { return "" } // no ENABLE_FLOWCTL: no control plane
	return []sdk.Option{sdk.WithListener(lis), sdk.WithEnv(noEnv), sdk.WithSignals(),
		sdk.WithLogger(slog.New(slog.DiscardHandler))}
}

// Upper is a processor: it upper-cases each event's kind.
type Upper struct{}

// Process maps one event.
func (Upper) Process(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	var m map[string]any
	if err := e.Decode(&m); err != nil {
		return nil, sdk.Permanent(err)
	}
	m["kind"] = strings.ToUpper(fmt.Sprint(m["kind"]))
	if err := e.SetJSON(m); err != nil {
		return nil, err
	}
	return []*sdk.Event{e}, nil
}

// A processor in a few lines: implement Process, call Serve. The second
// half of the example stands in for flowctl, to show the exchange.
func ExampleServe() {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sdk.Serve(ctx, Upper{}, quietly(lis)...) }() // in main: sdk.Serve(ctx, Upper{})

	// flowctl's side: open the stream, take the credit, send a batch.
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	s, _ := streamv1.NewProcessorServiceClient(conn).Process(ctx)
	first, _ := s.Recv()
	fmt.Println("credit:", first.GetCredit().GetBatches())
	s.Send(&streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: 1, Events: []*streamv1.Event{
		{Id: "1", Data: []byte(`{"kind":"payment"}`)},
		{Id: "2", Data: []byte(`not json`)},
	}}})
	m, _ := s.Recv()
	r := m.GetResult()
	for _, o := range r.GetOutputs() {
		fmt.Printf("seq %d input %d -> %s\n", r.GetSeq(), o.GetInputIndex(), o.GetEvent().GetData())
	}
	for _, f := range r.GetFailures() {
		fmt.Printf("seq %d input %d failed (permanent %v)\n", r.GetSeq(), f.GetIndex(), f.GetPermanent())
	}
	fmt.Println("credit back:", m.GetCredit().GetBatches())

	stop() // like SIGTERM: drain, then return
	s.CloseSend()
	fmt.Println("serve:", <-done)
	// Output:
	// credit: 4
	// seq 1 input 0 -> {"kind":"PAYMENT"}
	// seq 1 input 1 failed (permanent true)
	// credit back: 1
	// serve: <nil>
}

// A sink acknowledges a batch by returning from Write; a *BatchError fails
// some events only.
func ExampleServeSink() {
	sink := sdk.SinkFunc(func(ctx context.Context, events []*sdk.Event) error {
		failed := map[int]error{}
		for i, e := range events {
			if len(e.Data) == 0 {
				failed[i] = fmt.Errorf("event %s is empty", e.ID)
				continue
			}
			fmt.Printf("write %s\n", e.Data)
		}
		if len(failed) > 0 {
			return &sdk.BatchError{Failed: failed}
		}
		return nil
	})
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sdk.ServeSink(ctx, sink, quietly(lis)...) }()

	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	s, _ := streamv1.NewSinkServiceClient(conn).Write(ctx)
	s.Recv() // initial credit
	s.Send(&streamv1.SinkRequest{Batch: &streamv1.Batch{Seq: 7, Events: []*streamv1.Event{
		{Id: "a", Data: []byte(`{"n":1}`)}, {Id: "b"},
	}}})
	m, _ := s.Recv()
	fmt.Printf("ack seq %d, %d failed: %s\n", m.GetAck().GetSeq(), len(m.GetAck().GetFailures()), m.GetAck().GetFailures()[0].GetError())

	stop()
	s.CloseSend()
	fmt.Println("serve:", <-done)
	// Output:
	// write {"n":1}
	// ack seq 7, 1 failed: event b is empty
	// serve: <nil>
}

// A source emits events; emit blocks until flowctl grants credit. Serve
// returns once the source is exhausted and flowctl acknowledged everything.
func ExampleServeSource() {
	src := sdk.SourceFunc(func(ctx context.Context, emit sdk.EmitFunc) error {
		for i := 1; i <= 3; i++ {
			e := &sdk.Event{ID: fmt.Sprint(i), Type: "tick", Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
			if err := emit(ctx, e); err != nil {
				return err
			}
		}
		return nil // exhausted
	})
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error)
	go func() { done <- sdk.ServeSource(context.Background(), src, quietly(lis)...) }()

	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	s, _ := streamv1.NewSourceServiceClient(conn).Read(context.Background())
	s.Send(&streamv1.SourceRequest{Credit: &streamv1.Credit{Batches: 8}})
	for {
		m, _ := s.Recv()
		if m.GetEnd() != nil {
			fmt.Println("end:", m.GetEnd().GetReason())
			break
		}
		b := m.GetBatch()
		fmt.Printf("batch %d: %s\n", b.GetSeq(), b.GetEvents()[0].GetData())
		s.Send(&streamv1.SourceRequest{Ack: &streamv1.Ack{Seq: b.GetSeq()}})
	}
	s.CloseSend()
	fmt.Println("serve:", <-done)
	// Output:
	// batch 1: {"i":1}
	// batch 2: {"i":2}
	// batch 3: {"i":3}
	// end: exhausted
	// serve: <nil>
}

// A component of a `flowctl server` with mutual TLS reads FLOWCTL_TLS_CA,
// FLOWCTL_TLS_CERT and FLOWCTL_TLS_KEY; options say the same in code. A
// token is never sent in plaintext off this machine: Serve refuses to start.
func ExampleWithControlPlaneToken() {
	env := map[string]string{
		sdk.EnvEnable:      "true",
		sdk.EnvEndpoint:    "192.0.2.10:7070", // another machine, no TLS configured
		sdk.EnvComponentID: "upper",
	}
	err := sdk.Serve(context.Background(), Upper{},
		sdk.WithEnv(func(k string) string { return env[k] }),
		sdk.WithControlPlaneToken("s3cret"),
		// With TLS the token is sent:
		// sdk.WithControlPlaneTLS("pki/ca.crt", "pki/client.crt", "pki/client.key"),
		sdk.WithSignals(), sdk.WithLogger(slog.New(slog.DiscardHandler)))
	fmt.Println(err)
	// Output:
	// flowctl sdk: FLOWCTL_TOKEN is set but the control plane 192.0.2.10:7070 is not on this machine and TLS is off: refusing to send the token in plaintext; set FLOWCTL_TLS_CA to the CA that signed the control plane's certificate
}
