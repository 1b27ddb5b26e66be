package wirecodec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/mem"
)

func TestMarshal(t *testing.T) {
	errWrite := errors.New("cannot write")
	large := 64 << 10
	if mem.IsBelowBufferPoolingThreshold(large) {
		t.Fatalf("%d bytes are below gRPC's pooling threshold: the pooled case tests nothing", large)
	}
	cases := []struct {
		name    string
		size    int
		write   int   // bytes appendTo writes
		err     error // appendTo's error
		wantErr string
	}{
		{"small, exact", 100, 100, nil, ""},
		{"pooled, exact", large, large, nil, ""},
		{"small, short", 100, 99, nil, "encoded 99 bytes, sized 100"},
		{"pooled, long", large, large + 1, nil, "sized"},
		{"small, appendTo fails", 100, 10, errWrite, errWrite.Error()},
		{"pooled, appendTo fails", large, 10, errWrite, errWrite.Error()},
		{"empty", 0, 0, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := bytes.Repeat([]byte{'x'}, c.write)
			var gotCap int
			m, err := Marshal(c.size, func(b []byte) ([]byte, error) {
				if len(b) != 0 {
					t.Errorf("appendTo got %d bytes already in its buffer", len(b))
				}
				gotCap = cap(b)
				return append(b, want...), c.err
			})
			if gotCap < c.size {
				t.Errorf("appendTo got a buffer of capacity %d for %d bytes", gotCap, c.size)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				if c.err != nil && !errors.Is(err, c.err) {
					t.Fatalf("err = %v does not wrap appendTo's", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Free()
			if got := m.Materialize(); !bytes.Equal(got, want) {
				t.Fatalf("message of %d bytes, want the %d appendTo wrote", len(got), len(want))
			}
		})
	}
}
