package external

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

// waitTaker returns once a taker is blocked on w (its readiness signal:
// it set waiting), failing the test if none does within a bounded number
// of yields.
func waitTaker(t *testing.T, w *eventWindow) {
	t.Helper()
	for range 1_000_000 {
		w.mu.Lock()
		waiting := w.waiting
		w.mu.Unlock()
		if waiting {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("no taker blocked on the window")
}

func TestEventWindow(t *testing.T) {
	never := make(chan struct{})
	t.Run("takes what fits, blocks until released", func(t *testing.T) {
		w := &eventWindow{free: 10, wake: make(chan struct{})}
		if err := w.take(context.Background(), 6, never); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { got <- w.take(context.Background(), 6, never) }()
		waitTaker(t, w)
		w.release(1) // 5 free: still not enough
		select {
		case err := <-got:
			t.Fatalf("took 6 with 5 free: %v", err)
		default:
		}
		waitTaker(t, w)
		w.release(5)
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.free != 4 {
			t.Fatalf("free %d after taking 6 of 10, want 4", w.free)
		}
	})
	t.Run("gives up when the conn breaks", func(t *testing.T) {
		w := &eventWindow{free: 0, wake: make(chan struct{})}
		broken := make(chan struct{})
		got := make(chan error, 1)
		go func() { got <- w.take(context.Background(), 1, broken) }()
		waitTaker(t, w)
		close(broken)
		if err := <-got; !errors.Is(err, errWindowBroken) {
			t.Fatalf("err = %v, want errWindowBroken", err)
		}
	})
	t.Run("gives up when ctx ends", func(t *testing.T) {
		w := &eventWindow{free: 3, wake: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan error, 1)
		go func() { got <- w.take(ctx, 4, never) }()
		waitTaker(t, w)
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.free != 3 {
			t.Fatalf("free %d after a take that gave up, want 3", w.free)
		}
	})
}
