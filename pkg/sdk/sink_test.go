package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// recordingSink keeps what it wrote and fails as the events ask.
type recordingSink struct {
	mu      sync.Mutex
	written []string // "seq:redelivered:id"
}

func (s *recordingSink) Write(ctx context.Context, events []*sdk.Event) error {
	b, _ := sdk.BatchInfo(ctx)
	failed := map[int]error{}
	for i, e := range events {
		switch e.Type {
		case "all-fail":
			return errors.New("disk full")
		case "fail":
			failed[i] = errors.New("rejected")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range events {
		if failed[i] == nil {
			s.written = append(s.written, fmt.Sprintf("%d:%v:%s", b.Seq, b.Redelivered, e.ID))
		}
	}
	if len(failed) > 0 {
		return &sdk.BatchError{Failed: failed}
	}
	return nil
}

// TestSinkAcksEveryBatchOnce: each batch gets one Ack naming its seq, with
// per-event failures from a *BatchError, all events failed by any other
// error, and redelivery visible to Write.
func TestSinkAcksEveryBatchOnce(t *testing.T) {
	sink := &recordingSink{}
	h := start(t, sink, nil)
	s, err := streamv1.NewSinkServiceClient(h.conn).Write(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Recv()
	if err != nil || first.GetCredit().GetBatches() != sdk.DefaultInitialCredit {
		t.Fatalf("first message %v %v, want credit %d", first, err, sdk.DefaultInitialCredit)
	}
	batches := []struct {
		types       []string
		redelivered bool
		wantFails   string
	}{
		{[]string{"ok", "ok"}, false, ""},
		{[]string{"ok", "fail", "ok", "fail"}, false, "1 3"},
		{[]string{"ok", "all-fail"}, false, "0 1"},
		{[]string{"ok"}, true, ""},
	}
	for i, b := range batches {
		evs := make([]*streamv1.Event, len(b.types))
		for j, ty := range b.types {
			evs[j] = &streamv1.Event{Id: fmt.Sprintf("e%d.%d", i+1, j), Type: ty}
		}
		if err := s.Send(&streamv1.SinkRequest{Batch: &streamv1.Batch{Seq: uint64(i + 1), Events: evs, Redelivered: b.redelivered}}); err != nil {
			t.Fatal(err)
		}
	}
	acks := map[uint64]string{}
	for len(acks) < len(batches) {
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if a := m.GetAck(); a != nil {
			if _, dup := acks[a.GetSeq()]; dup {
				t.Fatalf("seq %d acked twice", a.GetSeq())
			}
			var f []string
			for _, x := range a.GetFailures() {
				f = append(f, fmt.Sprint(x.GetIndex()))
			}
			acks[a.GetSeq()] = strings.Join(f, " ")
			if m.GetCredit().GetBatches() != 1 {
				t.Fatalf("ack of seq %d carries credit %d, want 1", a.GetSeq(), m.GetCredit().GetBatches())
			}
		}
	}
	for i, b := range batches {
		if got := acks[uint64(i+1)]; got != b.wantFails {
			t.Errorf("seq %d failures %q, want %q", i+1, got, b.wantFails)
		}
	}
	s.CloseSend()
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v", err)
	}
	want := "1:false:e1.0 1:false:e1.1 2:false:e2.0 2:false:e2.2 4:true:e4.0"
	if got := strings.Join(sink.written, " "); got != want {
		t.Fatalf("written:\n got %s\nwant %s", got, want)
	}
}
