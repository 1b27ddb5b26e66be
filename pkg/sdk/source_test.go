package sdk_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// countingSource emits batches of three events, then either returns
// (finite) or waits for its context (endless), and records acks.
type countingSource struct {
	batches int
	endless bool

	mu    sync.Mutex
	acked []string // first event id of each acked batch
}

func (s *countingSource) Run(ctx context.Context, emit sdk.EmitFunc) error {
	for i := 1; i <= s.batches; i++ {
		evs := make([]*sdk.Event, 3)
		for j := range evs {
			evs[j] = &sdk.Event{ID: fmt.Sprintf("s%d.%d", i, j), Type: "tick", Data: []byte(`{}`), Time: time.Unix(int64(i), 0)}
		}
		if err := emit(ctx, evs...); err != nil {
			return err
		}
	}
	if s.endless {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *countingSource) Acked(events []*sdk.Event) {
	s.mu.Lock()
	s.acked = append(s.acked, events[0].ID)
	s.mu.Unlock()
}

// reader receives a source stream's messages in the background.
func reader(s streamv1.SourceService_ReadClient) (<-chan *streamv1.SourceResponse, <-chan error) {
	msgs, errc := make(chan *streamv1.SourceResponse, 100), make(chan error, 1)
	go func() {
		for {
			m, err := s.Recv()
			if err != nil {
				errc <- err
				close(msgs)
				return
			}
			msgs <- m
		}
	}()
	return msgs, errc
}

func next(t *testing.T, msgs <-chan *streamv1.SourceResponse) *streamv1.SourceResponse {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func quiet(t *testing.T, msgs <-chan *streamv1.SourceResponse, why string) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Fatalf("%s, got %v", why, m)
	case <-time.After(150 * time.Millisecond):
	}
}

// TestSourceHonoursCreditsAndAcks: the source sends only with credit,
// every batch once, End after the last, and Serve returns once everything
// is acknowledged; Acked sees every batch.
func TestSourceHonoursCreditsAndAcks(t *testing.T) {
	src := &countingSource{batches: 10}
	h := start(t, src, nil)
	s, err := streamv1.NewSourceServiceClient(h.conn).Read(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	msgs, errc := reader(s)
	quiet(t, msgs, "no batch before credit")
	if err := s.Send(&streamv1.SourceRequest{Credit: &streamv1.Credit{Batches: 2}}); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for range 2 {
		got = append(got, next(t, msgs).GetBatch().GetSeq())
	}
	quiet(t, msgs, "no third batch with a credit of 2")

	seen := map[uint64]bool{}
	ended := false
	for i := 0; !ended; i++ {
		// Ack the oldest batch and grant one more, as flowctl does.
		seq := got[i]
		if err := s.Send(&streamv1.SourceRequest{Ack: &streamv1.Ack{Seq: seq}, Credit: &streamv1.Credit{Batches: 1}}); err != nil {
			t.Fatal(err)
		}
		m := next(t, msgs)
		switch {
		case m.GetEnd() != nil:
			ended = true
			if m.GetEnd().GetReason() != "exhausted" {
				t.Fatalf("end reason %q", m.GetEnd().GetReason())
			}
		case m.GetBatch() != nil:
			b := m.GetBatch()
			if seen[b.GetSeq()] || b.GetRedelivered() || len(b.GetEvents()) != 3 {
				t.Fatalf("batch %v: duplicate or malformed", b)
			}
			seen[b.GetSeq()] = true
			got = append(got, b.GetSeq())
		}
	}
	if len(got) != 10 {
		t.Fatalf("got %d batches before End, want 10: %v", len(got), got)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("seqs %v, want 1..10 in order", got)
		}
	}
	// Ack the rest; then flowctl closes its side and the source is done.
	for _, seq := range got[len(got)-2:] {
		if err := s.Send(&streamv1.SourceRequest{Ack: &streamv1.Ack{Seq: seq}}); err != nil {
			t.Fatal(err)
		}
	}
	s.CloseSend()
	if err := <-errc; err != io.EOF {
		t.Fatalf("stream ended with %v", err)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("Serve of an exhausted source: %v, want nil", err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	want := "s1.0 s2.0 s3.0 s4.0 s5.0 s6.0 s7.0 s8.0 s9.0 s10.0"
	if g := strings.Join(src.acked, " "); g != want {
		t.Fatalf("Acked saw %s, want %s", g, want)
	}
}

// TestSourceRedeliversUnackedOnNewStream: batches sent on a broken stream
// and not acked go out again, same seq, marked redelivered, first on the
// next stream; only one stream at a time; SIGTERM-like drain ends with End.
func TestSourceRedeliversUnackedOnNewStream(t *testing.T) {
	src := &countingSource{batches: 5, endless: true}
	h := start(t, src, nil)
	client := streamv1.NewSourceServiceClient(h.conn)

	ctx1, cut := context.WithCancel(ctxT(t))
	s1, err := client.Read(ctx1)
	if err != nil {
		t.Fatal(err)
	}
	msgs1, errc1 := reader(s1)
	s1.Send(&streamv1.SourceRequest{Credit: &streamv1.Credit{Batches: 3}})
	for want := uint64(1); want <= 3; want++ {
		if b := next(t, msgs1).GetBatch(); b.GetSeq() != want {
			t.Fatalf("stream 1: got %v, want seq %d", b, want)
		}
	}
	s1.Send(&streamv1.SourceRequest{Ack: &streamv1.Ack{Seq: 2}})
	// The ack is applied before the stream is cut: wait until Acked saw it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		src.mu.Lock()
		n := len(src.acked)
		src.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ack of seq 2 not applied")
		}
	}
	cut()
	<-errc1

	var s2 streamv1.SourceService_ReadClient
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// The server notices the cut asynchronously; until then a new
		// stream is refused as a second one.
		s2, err = client.Read(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		s2.Send(&streamv1.SourceRequest{Credit: &streamv1.Credit{Batches: 10}})
		m, err := s2.Recv()
		if status.Code(err) == codes.FailedPrecondition && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if b := m.GetBatch(); b.GetSeq() != 1 || !b.GetRedelivered() {
			t.Fatalf("stream 2 first batch %v, want seq 1 redelivered", b)
		}
		break
	}
	msgs2, errc2 := reader(s2)
	for _, want := range []struct {
		seq         uint64
		redelivered bool
	}{{3, true}, {4, false}, {5, false}} {
		b := next(t, msgs2).GetBatch()
		if b.GetSeq() != want.seq || b.GetRedelivered() != want.redelivered {
			t.Fatalf("stream 2: got seq %d redelivered %v, want %+v", b.GetSeq(), b.GetRedelivered(), want)
		}
	}

	// A second stream while one is open is refused.
	s3, err := client.Read(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second concurrent Read: %v, want FailedPrecondition", err)
	}

	// Drain: Run is cancelled, End follows, then acks let Serve finish.
	h.stop()
	if m := next(t, msgs2); m.GetEnd().GetReason() != "stopping" {
		t.Fatalf("after stop: %v, want End{stopping}", m)
	}
	for _, seq := range []uint64{1, 3, 4, 5} {
		s2.Send(&streamv1.SourceRequest{Ack: &streamv1.Ack{Seq: seq}})
	}
	s2.CloseSend()
	if err := <-errc2; err != io.EOF {
		t.Fatalf("stream 2 ended with %v", err)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("Serve after drain: %v", err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if g := strings.Join(src.acked, " "); g != "s2.0 s1.0 s3.0 s4.0 s5.0" {
		t.Fatalf("Acked saw %s", g)
	}
}
