package conformance

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestOptionsDefaults(t *testing.T) {
	cases := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no command", Options{}, "no command"},
		{"unknown protocol", Options{Command: []string{"x"}, Protocol: "smoke"}, `protocol "smoke"`},
		{"unknown role", Options{Command: []string{"x"}, Role: "mixer"}, `role "mixer"`},
		{"defaults", Options{Command: []string{"x"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.opts.defaults()
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				o := c.opts
				if o.Protocol != ProtocolGRPC || o.Role != flow.RoleProcessor || o.Timeout != DefaultTimeout ||
					o.Grace != DefaultGrace || o.Batches != DefaultBatches || o.BatchSize != DefaultBatchSize {
					t.Fatalf("defaults not applied: %+v", o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestReportTable(t *testing.T) {
	cases := []struct {
		name string
		rows []Row
		ok   bool
		want string
	}{
		{"all pass", []Row{{CheckStart, Pass, "ok"}, {CheckHealth, Skip, "n/a"}}, true,
			"component test: processor ./p over stdio\n\nCHECK   RESULT  DETAIL\nstart   pass    ok\nhealth  skip    n/a\n\nPASS: 1 passed, 0 failed, 1 skipped\n"},
		{"one fails", []Row{{CheckStart, Pass, "ok"}, {CheckAcks, Fail, "seq 3\nanswered twice"}}, false,
			"component test: processor ./p over stdio\n\nCHECK  RESULT  DETAIL\nstart  pass    ok\nacks   FAIL    seq 3 answered twice\n\nFAIL: 1 passed, 1 failed, 0 skipped\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := &Report{Protocol: ProtocolStdio, Role: flow.RoleProcessor, Command: []string{"./p"}, Rows: c.rows}
			var b bytes.Buffer
			if err := rep.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Fatalf("table:\n%s\nwant:\n%s", b.String(), c.want)
			}
			if rep.OK() != c.ok {
				t.Fatalf("OK() = %v, want %v", rep.OK(), c.ok)
			}
			if _, found := rep.Row(c.rows[1].Check); !found {
				t.Fatal("Row did not find a row it has")
			}
		})
	}
}

// TestGatedReader checks that a held gate stops reads on a real pipe and
// that opening it lets them through again.
func TestGatedReader(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	g := newGatedReader(r)
	defer g.Close()
	if _, err := w.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := g.Read(buf); n != 1 || err != nil {
		t.Fatalf("open gate: read %d, %v", n, err)
	}
	g.hold()
	if _, err := w.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		n, _ := g.Read(buf)
		got <- n
	}()
	select {
	case <-got:
		t.Fatal("read went through a held gate")
	case <-time.After(100 * time.Millisecond):
	}
	g.open()
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("read %d after opening, want 1", n)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("read still blocked after opening the gate")
	}
}

// TestPipeFill measures what sits in a real pipe from its write end.
func TestPipeFill(t *testing.T) {
	cases := []struct {
		name  string
		write int
	}{
		{"empty", 0},
		{"some", 1000},
		{"more", 40000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			if c.write > 0 {
				if _, err := w.Write(make([]byte, c.write)); err != nil {
					t.Fatal(err)
				}
			}
			n, err := pipeFill(w)
			if err != nil || n != c.write {
				t.Fatalf("pipeFill = %d, %v; want %d", n, err, c.write)
			}
		})
	}
	if _, err := pipeFill(io.Discard); err == nil {
		t.Fatal("pipeFill accepted something that is not a file")
	}
}

// TestCaptureLogger checks that warnings count as violations (with the
// conn's err when it gives one) and information does not.
func TestCaptureLogger(t *testing.T) {
	v := &violations{}
	var out bytes.Buffer
	log := newCaptureLogger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), v).With("component", "x")
	log.Info("component is draining")
	log.Warn("ignoring a line", "err", errors.New("seq 3 is not an input in flight"), "line", "{}")
	log.Warn("answer for a batch not in flight", "seq", 7)
	got := v.list()
	if len(got) != 2 {
		t.Fatalf("%d violations, want 2: %v", len(got), got)
	}
	if got[0].Error() != "seq 3 is not an input in flight" || !strings.Contains(got[1].Error(), "seq=7") {
		t.Fatalf("violations = %v", got)
	}
	if !strings.Contains(out.String(), "component is draining") {
		t.Fatal("records were not passed on to the run's logger")
	}
}

// TestRunStdio runs the whole suite through Run against the well-behaved
// stdio fixture and its ignore-SIGTERM mode (the CLI tests cover the rest).
func TestRunStdio(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cases := []struct {
		mode string
		ok   bool
		fail string
	}{
		{"ok", true, ""},
		{"ignore-term", false, CheckSIGTERM},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			rep, err := Run(context.Background(), Options{
				Protocol: ProtocolStdio,
				Command:  []string{python, "testdata/brokenstdio.py", c.mode},
				Timeout:  15 * time.Second, // generous: Python starts slowly on a loaded machine
				Grace:    time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_ = rep.WriteTable(&b)
			if rep.OK() != c.ok {
				t.Fatalf("OK() = %v, want %v:\n%s", rep.OK(), c.ok, b.String())
			}
			if len(rep.Rows) != 8 {
				t.Fatalf("%d rows, want 8:\n%s", len(rep.Rows), b.String())
			}
			if c.fail != "" {
				if row, _ := rep.Row(c.fail); row.Outcome != Fail {
					t.Fatalf("row %s = %s, want FAIL:\n%s", c.fail, row.Outcome, b.String())
				}
			}
		})
	}
}
