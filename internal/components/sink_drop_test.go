package components

import (
	"context"
	"testing"
)

func TestDropSink(t *testing.T) {
	s := ioNewSink(t, "drop", "", nil)
	for range 3 {
		if err := s.Write(context.Background(), ioSampleBatch()); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.(*dropSink).Count(); n != 9 {
		t.Errorf("count = %d, want 9", n)
	}
	ioClose(t, s)
}
