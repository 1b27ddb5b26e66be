package components

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioNewStdin builds a stdin source reading r instead of os.Stdin.
func ioNewStdin(t *testing.T, cfg flow.Config, r io.Reader) flow.Source {
	t.Helper()
	old := ioStdin
	ioStdin = r
	defer func() { ioStdin = old }()
	return ioNewSource(t, "stdin", "in", "", cfg)
}

func TestStdinSource(t *testing.T) {
	tests := []struct {
		name, in string
		cfg      flow.Config
		want     string
	}{
		{"json lines", "{\"a\":1}\n\n{\"a\":\n{\"a\":3}", flow.Config{}, "in:1={\"a\":1}\nin:3={\"a\":\nin:4={\"a\":3}\n"},
		{"raw lines", "one\ntwo\n", flow.Config{"format": "lines"}, "in:1=one\nin:2=two\n"},
		{"empty input", "", flow.Config{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em := newIOTestEmitter()
			if err := ioRunSource(t, ioNewStdin(t, tt.cfg, strings.NewReader(tt.in)), em); err != nil {
				t.Fatal(err)
			}
			if got := ioDescribe(em.events()); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// Lines written to a pipe are emitted as they arrive (a batch is what is
// ready, never waiting to fill), and Run returns on cancel even though the
// read is still blocked.
func TestStdinSourceStreamsAndStops(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	src := ioNewStdin(t, flow.Config{"format": "lines"}, pr)
	em := newIOTestEmitter()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, em) }()
	io.WriteString(pw, "first\n")
	em.waitEvents(t, 1)
	io.WriteString(pw, "second\nthi")
	evs := em.waitEvents(t, 2)
	if got := ioDescribe(evs); got != "in:1=first\nin:2=second\n" {
		t.Errorf("events %q", got)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
