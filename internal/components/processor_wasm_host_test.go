package components

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/wasmtest"
)

// openWasm builds a wasm processor on module with cfg's other fields and
// opens it.
func openWasm(t testing.TB, module string, cfg flow.Config) *wasmProcessor {
	t.Helper()
	if cfg == nil {
		cfg = flow.Config{}
	}
	cfg["module"] = module
	spec := wasmSpec(t)
	if err := spec.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	v, err := spec.New(flow.BuildContext{Name: "w", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	p := v.(*wasmProcessor)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func wasmSpec(t testing.TB) *flow.ComponentSpec {
	for _, s := range builtins {
		if s.Role == flow.RoleProcessor && s.Name == "wasm" {
			return s
		}
	}
	t.Fatal("no wasm processor registered")
	return nil
}

func wasmEvents(datas ...string) []*flow.Event {
	evs := make([]*flow.Event, len(datas))
	for i, d := range datas {
		evs[i] = &flow.Event{ID: fmt.Sprintf("e%d", i), Type: "t", Source: "s", Data: []byte(d)}
	}
	return evs
}

// wasmAnswer is one input's result, written compactly for comparison.
func wasmAnswer(outs []*flow.Event, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, e := range outs {
		s := e.ID + " " + e.Type + " " + string(e.Data)
		if len(e.Metadata) > 0 {
			s += fmt.Sprintf(" %v", e.Metadata)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " | ")
}

func TestWasmProcessorGo(t *testing.T) {
	mod := wasmtest.BuildGo(t, "internal/components/testdata/wasmbehave")
	p := openWasm(t, mod, flow.Config{"timeout": "2s", "max_memory_mib": 128})
	tests := []struct {
		name  string
		batch []string
		want  []string // per input event
	}{
		{"echo", []string{`{"a":1}`, `{"b":"x"}`}, []string{
			`e0 t {"seen":{"a":1},"id":"e0"}`,
			`e1 t {"seen":{"b":"x"},"id":"e1"}`,
		}},
		{"error and drop and fanout", []string{`{"do":"error"}`, `{"do":"drop"}`, `{"do":"fanout"}`, `{}`}, []string{
			"error: wasm module: told to fail",
			"",
			`e2 t {"part":1} | e2.1 half {"part":2} map[k:v]`,
			`e3 t {"seen":{},"id":"e3"}`,
		}},
		{"panic is the event's error", []string{`{"do":"panic"}`, `{"z":0}`}, []string{
			"error: wasm module: panic: told to panic",
			`e1 t {"seen":{"z":0},"id":"e1"}`,
		}},
		{"not JSON", []string{`nope`, `{"k":1}`}, []string{
			"error: wasm: the payload is not valid JSON; the wasm processor takes JSON payloads only",
			`e1 t {"seen":{"k":1},"id":"e1"}`,
		}},
		{"exit stops the instance, only its event fails", []string{`{"x":1}`, `{"do":"exit"}`, `{"x":3}`}, []string{
			`e0 t {"seen":{"x":1},"id":"e0"}`,
			"error: wasm: flowctl_process trapped: module closed with exit_code(3)",
			`e2 t {"seen":{"x":3},"id":"e2"}`,
		}},
		{"out of memory traps", []string{`{"do":"oom"}`, `{"x":2}`}, []string{
			"error: wasm: flowctl_process trapped: wasm error: unreachable", // the Go runtime: fatal error: out of memory
			`e1 t {"seen":{"x":2},"id":"e1"}`,
		}},
		{"a loop times out the batch", []string{`{"x":1}`, `{"do":"loop"}`}, []string{
			"error: wasm: flowctl_process did not return within timeout 2s: timeout",
			"error: wasm: flowctl_process did not return within timeout 2s: timeout",
		}},
		{"after a timeout a fresh instance answers", []string{`{"after":1}`}, []string{
			`e0 t {"seen":{"after":1},"id":"e0"}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := wasmEvents(tt.batch...)
			outs, failures, err := p.ProcessBatch(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				got := wasmAnswer(outs[i], failures[i])
				if got != want {
					t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
				}
				if failures[i] != nil && !errors.Is(failures[i], flow.ErrPermanent) {
					t.Errorf("event %d: failure %v is not permanent", i, failures[i])
				}
			}
		})
	}
}

func TestWasmProcessorRust(t *testing.T) {
	mod := wasmtest.BuildRust(t, "internal/components/testdata/wasmrust/echo.rs")
	p := openWasm(t, mod, flow.Config{"timeout": "30s"}) // generous: -race on a loaded machine
	in := wasmEvents(`{"a":"x,\"data\":1"}`, `{"p":"poison"}`, `[1,2]`, `{"q":"abort"}`, `{"b":2}`)
	in[0].Metadata = map[string]string{"data": "m"}
	outs, failures, err := p.ProcessBatch(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`e0 rust.seen {"a":"x,\"data\":1"} map[data:m]`,
		"error: wasm module: poison event",
		`e2 rust.seen [1,2]`,
		"error: wasm: flowctl_process trapped: wasm error: unreachable",
		`e4 rust.seen {"b":2}`,
	}
	for i, w := range want {
		if got := wasmAnswer(outs[i], failures[i]); got != w {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, w)
		}
	}
}

func TestWasmProcessorConfigErrors(t *testing.T) {
	spec := wasmSpec(t)
	tests := []struct {
		name string
		cfg  flow.Config
		want string
	}{
		{"no module", flow.Config{}, "module: is required"},
		{"bad timeout", flow.Config{"module": "m.wasm", "timeout": "soon"}, `"soon" is not a duration`},
		{"zero timeout", flow.Config{"module": "m.wasm", "timeout": "0s"}, "must be positive"},
		{"memory", flow.Config{"module": "m.wasm", "max_memory_mib": 5000}, "between 1 and 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := spec.Validate(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestWasmProcessorOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notWasm := filepath.Join(dir, "x.wasm")
	os.WriteFile(notWasm, []byte("hello"), 0o644)
	// A valid module with no exports at all: the magic and the version.
	empty := filepath.Join(dir, "empty.wasm")
	os.WriteFile(empty, []byte{0, 'a', 's', 'm', 1, 0, 0, 0}, 0o644)
	tests := []struct {
		name, path string
		want       []string
	}{
		{"missing file", filepath.Join(dir, "nope.wasm"), []string{"no such file", "relative paths are from the pipeline file"}},
		{"not wasm", notWasm, []string{"not a valid WebAssembly module"}},
		{"no exports", empty, []string{"exports no function flowctl_alloc", "exports no function flowctl_process", `no memory named "memory"`, "-buildmode=c-shared"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := wasmSpec(t).New(flow.BuildContext{Name: "w", Config: flow.Config{"module": tt.path}})
			if err != nil {
				t.Fatal(err)
			}
			p := v.(*wasmProcessor)
			defer p.Close(context.Background())
			err = p.Open(context.Background())
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestWasmProcessorConcurrent runs batches from several goroutines: each
// takes its own instance.
func TestWasmProcessorConcurrent(t *testing.T) {
	p := openWasm(t, wasmtest.BuildGo(t, "internal/components/testdata/wasmbehave"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errc := make(chan error, 4)
	for g := range 4 {
		go func() {
			for n := range 20 {
				in := wasmEvents(fmt.Sprintf(`{"g":%d,"n":%d}`, g, n))
				outs, failures, err := p.ProcessBatch(ctx, in)
				if err == nil && failures[0] != nil {
					err = failures[0]
				}
				if err == nil {
					var v struct{ Seen struct{ G, N int } }
					if err = json.Unmarshal(outs[0][0].Data, &v); err == nil && (v.Seen.G != g || v.Seen.N != n) {
						err = fmt.Errorf("goroutine %d call %d got %s", g, n, outs[0][0].Data)
					}
				}
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 4 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

// TestWasmUSDMap runs the example module (examples/wasm/usdmap).
func TestWasmUSDMap(t *testing.T) {
	p := openWasm(t, wasmtest.BuildGo(t, "examples/wasm/usdmap"), nil)
	in := wasmEvents(`{"id":1,"amount":12345,"kind":"sale"}`, `{"id":2}`)
	outs, failures, err := p.ProcessBatch(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`e0 t {"amount":12345,"amount_usd":123.45,"id":1,"kind":"SALE"}`, "error: wasm module: amount is missing or not a number"}
	for i, w := range want {
		if got := wasmAnswer(outs[i], failures[i]); got != w {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, w)
		}
	}
}

// TestWasmUSDMapRust runs the Rust example module
// (examples/wasm/usdmap-rust).
func TestWasmUSDMapRust(t *testing.T) {
	p := openWasm(t, wasmtest.BuildRust(t, "examples/wasm/usdmap-rust/usdmap.rs"), nil)
	in := wasmEvents(`{"id":1,"amount":12345,"kind":"sale","note":"a,\"b\"}"}`, `{"id":2}`, `{"amount":5000,"x":{"y":[1,{"z":"}"}]}}`)
	outs, failures, err := p.ProcessBatch(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`e0 t {"id":1,"amount":12345,"kind":"SALE","note":"a,\"b\"}","amount_usd":123.45}`,
		"error: wasm module: amount is missing or not a number",
		`e2 t {"amount":5000,"x":{"y":[1,{"z":"}"}]},"amount_usd":50}`,
	}
	for i, w := range want {
		if got := wasmAnswer(outs[i], failures[i]); got != w {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, w)
		}
	}
}
