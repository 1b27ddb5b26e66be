package components

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/wasmtest"
)

// wasmAssemble writes a module from its sections (id, contents).
func wasmAssemble(secs ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range secs {
		b = append(b, s[0])
		b = wasmAppendU32(b, uint32(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

func wasmVec(items ...[]byte) []byte {
	b := wasmAppendU32(nil, uint32(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func wasmExportEntry(name string, kind byte, idx uint32) []byte {
	b := wasmAppendU32(nil, uint32(len(name)))
	b = append(b, name...)
	return wasmAppendU32(append(b, kind), idx)
}

func wasmBody(code ...byte) []byte { return append(wasmAppendU32(nil, uint32(len(code))), code...) }

// wasmLoopModule is a module with the ABI whose flowctl_process never
// returns (loop br 0 end), plus extra exports.
func wasmLoopModule(extra ...[]byte) []byte {
	exports := append([][]byte{
		wasmExportEntry("memory", 2, 0),
		wasmExportEntry(wasmAllocName, 0, 0),
		wasmExportEntry(wasmProcessName, 0, 1),
	}, extra...)
	return wasmAssemble(
		append([]byte{1}, wasmVec([]byte{0x60, 1, 0x7F, 1, 0x7F}, []byte{0x60, 2, 0x7F, 0x7F, 1, 0x7E})...), // types
		append([]byte{3}, wasmVec([]byte{0}, []byte{1})...),                                                 // functions
		append([]byte{5}, wasmVec([]byte{0, 1})...),                                                         // memory: 1 page
		append([]byte{7}, wasmVec(exports...)...),
		append([]byte{10}, wasmVec(
			wasmBody(0, 0x41, 0, 0x0B),                            // alloc: i32.const 0
			wasmBody(0, 0x03, 0x40, 0x0C, 0, 0x0B, 0x42, 0, 0x0B), // process: loop br 0 end; i64.const 0
		)...),
	)
}

func TestWasmAddStop(t *testing.T) {
	loop := wasmLoopModule()
	got, err := wasmAddStop(loop)
	if err != nil {
		t.Fatal(err)
	}
	// The global section is new (none before), placed before the exports,
	// and the loop gained global.get 0; if; unreachable; end.
	if !bytes.Contains(got, []byte{0x06, 0x06, 0x01, 0x7F, 0x01, 0x41, 0x00, 0x0B}) {
		t.Errorf("no stop global in % x", got)
	}
	if !bytes.Contains(got, []byte{0x03, 0x40, 0x23, 0x00, 0x04, 0x40, 0x00, 0x0B, 0x0C, 0x00, 0x0B}) {
		t.Errorf("no check at the loop head in % x", got)
	}
	if !bytes.Contains(got, []byte(wasmStopName)) {
		t.Errorf("no export %s", wasmStopName)
	}

	tests := []struct {
		name string
		code []byte
		want string
	}{
		{"not wasm", []byte("hello"), "not a WebAssembly 1.0 binary module"},
		{"truncated", loop[:len(loop)-3], "unexpected end of the module"},
		{"unknown instruction", bytes.Replace(loop, []byte{0x42, 0, 0x0B}, []byte{0x06, 0, 0x0B}, 1), "unknown instruction 0x06"},
		{"name taken", wasmLoopModule(wasmExportEntry(wasmStopName, 0, 0)), "already exports " + wasmStopName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wasmAddStop(tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestWasmStopLoop runs a module that never returns, with the stop global
// and (when the module cannot take it) with wazero's close-on-context-done:
// either way the call ends at the timeout and its events are
// dead-lettered.
func TestWasmStopLoop(t *testing.T) {
	tests := []struct {
		name      string
		code      []byte
		stoppable bool
	}{
		{"stop global", wasmLoopModule(), true},
		{"close on context done", wasmLoopModule(wasmExportEntry(wasmStopName, 0, 0)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod := filepath.Join(t.TempDir(), "loop.wasm")
			if err := os.WriteFile(mod, tt.code, 0o644); err != nil {
				t.Fatal(err)
			}
			p := openWasm(t, mod, flow.Config{"timeout": "100ms"})
			if p.stoppable != tt.stoppable {
				t.Fatalf("stoppable = %v, want %v", p.stoppable, tt.stoppable)
			}
			for range 2 { // the second batch gets a fresh instance
				_, failures, err := p.ProcessBatch(context.Background(), wasmEvents(`{"a":1}`, `{"b":2}`))
				if err != nil {
					t.Fatal(err)
				}
				for i := range 2 {
					if !errors.Is(failures[i], flow.ErrPermanent) || !strings.Contains(failures[i].Error(), "flowctl_process did not return within timeout 100ms") {
						t.Errorf("event %d: %v", i, failures[i])
					}
				}
			}
		})
	}
}

// TestWasmStopTestModules checks that the Go and Rust test modules take
// the stop global, so that their tests exercise the fast path.
func TestWasmStopTestModules(t *testing.T) {
	for _, mod := range []string{
		wasmtest.BuildGo(t, "internal/components/testdata/wasmbehave"),
		wasmtest.BuildGo(t, "examples/wasm/usdmap"),
		wasmtest.BuildRust(t, "internal/components/testdata/wasmrust/echo.rs"),
	} {
		if p := openWasm(t, mod, nil); !p.stoppable {
			t.Errorf("%s: runs without the stop global", mod)
		}
	}
}
