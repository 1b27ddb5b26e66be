package components

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

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
	return wasmAppendU32(append(wasmAppendName(nil, name), kind), idx)
}

func wasmBody(code ...byte) []byte { return append(wasmAppendU32(nil, uint32(len(code))), code...) }

// wasmLoopModule is a module with the ABI whose flowctl_process never
// returns (loop br 0 end). It imports one host function (function 0:
// env.nop, or WASI's sched_yield, which returns an i32, with wasi), so
// that the rewriter has indices to move: flowctl_alloc is function 1 and
// calls it, flowctl_process is function 2, a table holds function 1
// (element segment), and the name section names both.
func wasmLoopModule(wasi bool) []byte {
	if wasi {
		return wasmLoopModuleImporting("wasi_snapshot_preview1", "sched_yield", true)
	}
	return wasmLoopModuleImporting("env", "nop", false)
}

// wasmLoopModuleImporting is wasmLoopModule importing module.name, of
// type () -> () or, with result, () -> i32.
func wasmLoopModuleImporting(module, name string, result bool) []byte {
	imp, typ, alloc := wasmAppendName(wasmAppendName(nil, module), name), []byte{0x60, 0, 0}, []byte{0, 0x10, 0, 0x41, 0, 0x0B}
	if result {
		typ, alloc = []byte{0x60, 0, 1, 0x7F}, []byte{0, 0x10, 0, 0x1A, 0x41, 0, 0x0B}
	}
	names := wasmVec(wasmAppendName(wasmAppendU32(nil, 1), "alloc"), wasmAppendName(wasmAppendU32(nil, 2), "process"))
	nameSec := append(wasmAppendName(nil, "name"), 1)
	nameSec = append(wasmAppendU32(nameSec, uint32(len(names))), names...)
	return wasmAssemble(
		append([]byte{1}, wasmVec([]byte{0x60, 1, 0x7F, 1, 0x7F}, []byte{0x60, 2, 0x7F, 0x7F, 1, 0x7E}, typ)...), // types
		append([]byte{2}, wasmVec(append(imp, 0, 2))...),                                                         // import: type 2
		append([]byte{3}, wasmVec([]byte{0}, []byte{1})...),                                                      // functions
		append([]byte{4}, wasmVec([]byte{0x70, 0, 1})...),                                                        // table: 1 funcref
		append([]byte{5}, wasmVec([]byte{0, 1})...),                                                              // memory: 1 page
		append([]byte{7}, wasmVec(
			wasmExportEntry("memory", 2, 0),
			wasmExportEntry(wasmAllocName, 0, 1),
			wasmExportEntry(wasmProcessName, 0, 2),
		)...),
		append([]byte{9}, wasmVec([]byte{0, 0x41, 0, 0x0B, 1, 1})...), // elem: table 0 at 0 = [function 1]
		append([]byte{10}, wasmVec(
			wasmBody(alloc...), // alloc: call function 0; i32.const 0
			wasmBody(0, 0x03, 0x40, 0x0C, 0, 0x0B, 0x42, 0, 0x0B), // process: loop br 0 end; i64.const 0
		)...),
		append([]byte{0}, nameSec...),
	)
}

// wasmFuelGlobalSection is a global section holding only the fuel global.
func wasmFuelGlobalSection() []byte {
	g := append([]byte{1, 0x7F, 0x01, 0x41}, wasmAppendS32(nil, wasmFuelSteps)...)
	g = append(g, 0x0B)
	return append(wasmAppendU32([]byte{0x06}, uint32(len(g))), g...)
}

func TestWasmAddFuel(t *testing.T) {
	loop := wasmLoopModule(false)
	got, err := wasmAddFuel(loop)
	if err != nil {
		t.Fatal(err)
	}
	// The fuel function is import 1 (after env.nop), so the module's own
	// functions move from 1, 2 to 2, 3; the fuel global is global 0.
	check := wasmFuelCheck(1, 0)
	for _, want := range []struct {
		what string
		b    []byte
	}{
		{"a type () -> ()", []byte{0x60, 0, 0, 0x60, 0, 0}},
		{"the fuel import", append(wasmAppendName(wasmAppendName(nil, wasmFuelModule), wasmFuelFunc), 0, 3)},
		{"the fuel global (a new section)", wasmFuelGlobalSection()},
		{"flowctl_alloc exported as function 2", wasmExportEntry(wasmAllocName, 0, 2)},
		{"flowctl_process exported as function 3", wasmExportEntry(wasmProcessName, 0, 3)},
		{"the element segment holding function 2", []byte{0, 0x41, 0, 0x0B, 1, 2}},
		{"alloc still calling env.nop (function 0)", []byte{0x10, 0, 0x41, 0, 0x0B}},
		{"the check at the loop head", append(append([]byte{0x03, 0x40}, check...), 0x0C, 0, 0x0B)},
		{"the name of function 3", append(wasmAppendU32(nil, 3), wasmAppendName(nil, "process")...)},
	} {
		if !bytes.Contains(got, want.b) {
			t.Errorf("no %s (% x) in % x", want.what, want.b, got)
		}
	}
	// wazero takes the result.
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := rt.CompileModule(ctx, got); err != nil {
		t.Fatalf("the rewritten module does not compile: %v", err)
	}

	tests := []struct {
		name string
		code []byte
		want string
	}{
		{"not wasm", []byte("hello"), "not a WebAssembly 1.0 binary module"},
		{"truncated", loop[:len(loop)-3], "unexpected end of the module"},
		{"unknown instruction", bytes.Replace(loop, []byte{0x42, 0, 0x0B}, []byte{0x06, 0, 0x0B}, 1), "unknown instruction 0x06"},
		{"fuel imported already", wasmLoopModuleImporting(wasmFuelModule, wasmFuelFunc, false), "already imports flowctl.fuel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wasmAddFuel(tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestWasmFuelLoop runs a module that never returns, with the fuel checks
// and (wasmTryFuel off) with wazero's close-on-context-done: either way
// the call ends at the timeout and its events are dead-lettered, and a
// fresh instance takes the next batch.
func TestWasmFuelLoop(t *testing.T) {
	mod := filepath.Join(t.TempDir(), "loop.wasm")
	if err := os.WriteFile(mod, wasmLoopModule(true), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, fuel := range []bool{true, false} {
		t.Run(map[bool]string{true: "fuel", false: "close on context done"}[fuel], func(t *testing.T) {
			defer func(old bool) { wasmTryFuel = old }(wasmTryFuel)
			wasmTryFuel = fuel
			p := openWasm(t, mod, flow.Config{"timeout": "100ms"})
			if p.fuel != fuel {
				t.Fatalf("fuel = %v, want %v", p.fuel, fuel)
			}
			for range 2 {
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

// TestWasmFuelLetsGCRun is the reason for the fuel: while a module loops,
// the garbage collector (which must stop every goroutine) still runs to
// the end, many times, because the module comes back to Go at every
// wasmFuelSteps iterations. (A stop flag checked without calling out to
// Go deadlocked here: the collector waited for the looping goroutine.)
func TestWasmFuelLetsGCRun(t *testing.T) {
	mod := filepath.Join(t.TempDir(), "loop.wasm")
	if err := os.WriteFile(mod, wasmLoopModule(true), 0o644); err != nil {
		t.Fatal(err)
	}
	p := openWasm(t, mod, flow.Config{"timeout": "60s"})
	if !p.fuel {
		t.Fatal("the loop module runs without fuel")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := wasmFuelCalls.Load()
	done := make(chan error, 1)
	go func() {
		_, _, err := p.ProcessBatch(ctx, wasmEvents(`{"a":1}`))
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for wasmFuelCalls.Load() < before+2 { // the module is looping
		if time.Now().After(deadline) {
			t.Fatal("the module never called the fuel function")
		}
		runtime.Gosched()
	}
	for range 5 {
		runtime.GC()
	}
	select {
	case err := <-done:
		t.Fatalf("the looping call ended before it was cancelled: %v", err)
	default:
	}
	cancel() // the next fuel call sees it and traps
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
}

// TestWasmFuelTestModules checks that the Go and Rust test modules take
// the fuel checks, so that their tests exercise the fast path.
func TestWasmFuelTestModules(t *testing.T) {
	for _, mod := range []string{
		wasmtest.BuildGo(t, "internal/components/testdata/wasmbehave"),
		wasmtest.BuildGo(t, "examples/wasm/usdmap"),
		wasmtest.BuildRust(t, "internal/components/testdata/wasmrust/echo.rs"),
	} {
		if p := openWasm(t, mod, nil); !p.fuel {
			t.Errorf("%s: runs without the fuel checks", mod)
		}
	}
}
