package external

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// TestStdioSourceRecvAfterEOF asks again after the source ended: every
// Recv must return io.EOF at once, not block (the first caller used to
// take the error away from the next).
func TestStdioSourceRecvAfterEOF(t *testing.T) {
	s := newStdioSource(nopWriteCloser{io.Discard}, strings.NewReader(`{"data":{"n":1}}`+"\n"+`{"data":{"n":2}}`+"\n"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := 0
	for i := 0; i < 5; i++ {
		_, b, err := s.Recv(ctx)
		if errors.Is(err, io.EOF) {
			continue
		}
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		got += len(b)
	}
	if got != 2 {
		t.Fatalf("received %d events, want 2", got)
	}
}
