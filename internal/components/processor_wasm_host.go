// The file is not named processor_wasm.go: a _wasm suffix would make Go
// build it only for GOARCH=wasm.

package components

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/flowctl/flowctl/internal/flow"
)

// The ABI's names (docs/wasm.md).
const (
	wasmAllocName   = "flowctl_alloc"
	wasmProcessName = "flowctl_process"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleProcessor,
		Name:    "wasm",
		Summary: "Runs each batch of events through a WebAssembly module (WASI preview 1, run by wazero inside flowctl): JSON lines in, one result per event out (its events, or an error that dead-letters it).",
		Delivery: "The module runs in the flowctl process; it does not change the pipeline's delivery: what the source and sinks promise holds. " +
			"A module that traps (panic, unreachable, out of memory) or does not answer within timeout is stopped and a fresh instance takes the next batch; after a trap each event of the batch is run again alone, so only the event that traps is dead-lettered; after a timeout every event of the batch is. Such failures are permanent: on_error's retries are not spent on them.",
		Fields: []flow.Field{
			{Name: "module", Type: flow.TypeString, Required: true, Example: "usdmap.wasm",
				Description: "Path of the .wasm module (relative to the pipeline file). It must export memory, flowctl_alloc(size i32) i32 and flowctl_process(ptr i32, len i32) i64 (see docs/wasm.md); a Go module built with pkg/wasmguest does."},
			{Name: "timeout", Type: flow.TypeDuration, Default: "5s",
				Description: "Longest a call into the module may run (one batch of up to 256 events, or the module's initialisation). A module still running then is stopped, its events dead-lettered, and a new instance started."},
			{Name: "max_memory_mib", Type: flow.TypeInt, Default: 256,
				Description: "Most linear memory one instance may grow to, in MiB (1–4096). A module that needs more traps (a Go module: fatal error out of memory) and the events of that call are dead-lettered."},
		},
		Examples: []string{
			"module: usdmap.wasm",
			"module: ./wasm/enrich.wasm\ntimeout: 2s\nmax_memory_mib: 64",
		},
		Validate: validateWith(parseWasm),
		New: func(bc flow.BuildContext) (any, error) {
			p, err := parseWasm(bc.Config)
			if err != nil {
				return nil, err
			}
			p.path = ioResolvePath(bc.Dir, p.path)
			p.log = bc.Logger
			if p.log == nil {
				p.log = slog.New(slog.DiscardHandler)
			}
			return p, nil
		},
	})
}

// wasmProcessor runs a Wasm module's flowctl_process over each batch.
//
// The runtime and the compiled module are made in Open, never at
// package initialisation: a pipeline without a wasm processor pays
// nothing for wazero. Instances are kept in a free list, one per
// concurrent caller; an instance that failed (trap, timeout) is closed and
// never reused, since its memory may be half-written.
//
//	Open: compile ─► instantiate one (checks the module starts)
//	ProcessBatch: take instance ─► alloc ─► write ─► process ─► read ─► put back
//	                                 └──── trap/timeout: close instance ───┘
type wasmProcessor struct {
	path     string
	timeout  time.Duration
	maxPages uint32
	log      *slog.Logger

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	// fuel: compiled with wasmAddFuel's checks (processor_wasm_fuel.go);
	// else stopped by wazero's slower close-on-context-done.
	fuel bool

	mu   sync.Mutex
	free []*wasmInstance
}

// wasmInstance is one instantiated module; one caller uses it at a time.
type wasmInstance struct {
	mod     api.Module
	mem     api.Memory
	alloc   api.Function
	process api.Function
}

func parseWasm(cfg flow.Config) (*wasmProcessor, error) {
	var errs []error
	p := &wasmProcessor{}
	path, ok, err := cfgString(cfg, "module")
	switch {
	case err != nil:
		errs = append(errs, err)
	case !ok || path == "":
		errs = append(errs, fieldErr("module", "is required", "give the path of a .wasm module, for example module: usdmap.wasm"))
	default:
		p.path = path
	}
	if p.timeout, err = ioCfgDuration(cfg, "timeout", 5*time.Second); err != nil {
		errs = append(errs, err)
	} else if p.timeout <= 0 {
		errs = append(errs, fieldErr("timeout", "must be positive", `for example timeout: 5s`))
	}
	mib, err := cfgInt(cfg, "max_memory_mib", 256)
	switch {
	case err != nil:
		errs = append(errs, err)
	case mib < 1 || mib > 4096:
		errs = append(errs, fieldErr("max_memory_mib", fmt.Sprintf("must be between 1 and 4096, got %d", mib), "a Wasm module's memory is at most 4096 MiB"))
	default:
		p.maxPages = uint32(mib) * 16 // 64 KiB pages
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Open compiles the module, checks it has the ABI's exports, and starts
// one instance so that a module that cannot start fails the run now.
func (p *wasmProcessor) Open(ctx context.Context) error {
	code, err := os.ReadFile(p.path)
	if err != nil {
		return fmt.Errorf("wasm module: %w (check module:, relative paths are from the pipeline file)", err)
	}
	p.fuel = wasmTryFuel && p.compileFuel(ctx, code)
	if !p.fuel {
		if err := p.compile(ctx, code, false); err != nil {
			p.closeRuntime(ctx)
			return fmt.Errorf("wasm module %s is not a valid WebAssembly module: %w", p.path, err)
		}
	}
	if err := wasmCheckExports(p.compiled); err != nil {
		return fmt.Errorf("wasm module %s: %w", p.path, err)
	}
	inst, err := p.instantiate(ctx)
	if err != nil {
		return fmt.Errorf("wasm module %s: %w", p.path, err)
	}
	p.put(inst)
	return nil
}

// compileFuel compiles the module with wasmAddFuel's checks; false (and
// a warning) when the rewriter refuses it or the result does not compile.
func (p *wasmProcessor) compileFuel(ctx context.Context, code []byte) bool {
	fuelCode, err := wasmAddFuel(code)
	if err != nil {
		p.log.Warn("wasm: cannot add the fuel checks to the module; it runs with wazero's slower close-on-context-done", slog.String("error", err.Error()))
		return false
	}
	if err := p.compile(ctx, fuelCode, true); err != nil {
		p.log.Warn("wasm: the module with the fuel checks does not compile; it runs with wazero's slower close-on-context-done", slog.String("error", err.Error()))
		p.closeRuntime(ctx)
		return false
	}
	return true
}

// compile makes the runtime and compiles code in it: with the fuel host
// function (fuel), else with wazero's WithCloseOnContextDone.
func (p *wasmProcessor) compile(ctx context.Context, code []byte, fuel bool) error {
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(!fuel).
		WithMemoryLimitPages(p.maxPages)
	if cache := wasmCompilationCache(p.log); cache != nil {
		rc = rc.WithCompilationCache(cache)
	}
	p.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, p.rt); err != nil {
		return fmt.Errorf("start WASI: %w", err)
	}
	if fuel {
		if _, err := p.rt.NewHostModuleBuilder(wasmFuelModule).
			NewFunctionBuilder().WithFunc(wasmFuel).Export(wasmFuelFunc).
			Instantiate(ctx); err != nil {
			return fmt.Errorf("start the fuel host module: %w", err)
		}
	}
	var err error
	p.compiled, err = p.rt.CompileModule(ctx, code)
	return err
}

func (p *wasmProcessor) closeRuntime(ctx context.Context) {
	if p.rt != nil {
		_ = p.rt.Close(ctx)
	}
	p.rt, p.compiled = nil, nil
}

// wasmCache is the compilation cache every wasm processor of the process
// shares, made on first use (never at package initialisation).
var wasmCache struct {
	once  sync.Once
	cache wazero.CompilationCache
}

// wasmCompilationCache returns a compilation cache in the user's cache
// directory (flowctl/wasm under os.UserCacheDir), so that a run started
// again (after a crash, say) does not compile its modules again; nil when
// there is no such directory. Entries are keyed by the module's hash and
// wazero's version.
func wasmCompilationCache(log *slog.Logger) wazero.CompilationCache {
	wasmCache.once.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			return
		}
		c, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "flowctl", "wasm"))
		if err != nil {
			log.Warn("wasm: no compilation cache, modules are compiled at every start", slog.String("error", err.Error()))
			return
		}
		wasmCache.cache = c
	})
	return wasmCache.cache
}

// wasmCheckExports says which of the ABI's exports a module lacks or
// declares with the wrong signature.
func wasmCheckExports(m wazero.CompiledModule) error {
	want := []struct {
		name        string
		params, res []api.ValueType
	}{
		{wasmAllocName, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
		{wasmProcessName, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	}
	fns := m.ExportedFunctions()
	var errs []error
	for _, w := range want {
		f, ok := fns[w.name]
		if !ok {
			errs = append(errs, fmt.Errorf("exports no function %s", w.name))
			continue
		}
		if !slices.Equal(f.ParamTypes(), w.params) || !slices.Equal(f.ResultTypes(), w.res) {
			errs = append(errs, fmt.Errorf("%s has the wrong signature (%s)", w.name, wasmSignature(f)))
		}
	}
	if _, ok := m.ExportedMemories()["memory"]; !ok {
		errs = append(errs, errors.New(`exports no memory named "memory"`))
	}
	if len(errs) > 0 {
		errs = append(errs, errors.New("want flowctl_alloc(i32) i32 and flowctl_process(i32, i32) i64 (docs/wasm.md); a Go module: import pkg/wasmguest and build with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared"))
	}
	return errors.Join(errs...)
}

func wasmSignature(f api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(f.ParamTypes()) + ") " + names(f.ResultTypes())
}

// instantiate starts a fresh instance. A reactor's _initialize (Go's
// c-shared runtime and package init) runs under the timeout.
func (p *wasmProcessor) instantiate(ctx context.Context) (*wasmInstance, error) {
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	logw := &wasmLogWriter{log: p.log}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions("_initialize").
		WithStdout(logw).WithStderr(logw).
		WithSysWalltime().WithSysNanotime()
	mod, err := p.rt.InstantiateModule(cctx, p.compiled, cfg)
	if err != nil {
		if cctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("initialisation did not finish within timeout %s", p.timeout)
		}
		return nil, fmt.Errorf("start an instance: %w", err)
	}
	return &wasmInstance{
		mod:     mod,
		mem:     mod.Memory(),
		alloc:   mod.ExportedFunction(wasmAllocName),
		process: mod.ExportedFunction(wasmProcessName),
	}, nil
}

func (p *wasmProcessor) get(ctx context.Context) (*wasmInstance, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		inst := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return inst, nil
	}
	p.mu.Unlock()
	return p.instantiate(ctx)
}

func (p *wasmProcessor) put(inst *wasmInstance) {
	p.mu.Lock()
	p.free = append(p.free, inst)
	p.mu.Unlock()
}

// Close releases the instances and the runtime.
func (p *wasmProcessor) Close(ctx context.Context) error {
	p.mu.Lock()
	p.free = nil
	p.mu.Unlock()
	if p.rt == nil {
		return nil
	}
	return p.rt.Close(ctx)
}

// Process runs one event through the module.
func (p *wasmProcessor) Process(ctx context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	outs, failures, err := p.ProcessBatch(ctx, []*flow.Event{in})
	if err != nil {
		return out, err
	}
	if err := failures[0]; err != nil {
		return out, err
	}
	return append(out, outs[0]...), nil
}

// wasmEventError is an event's failure in the module: the module said so,
// trapped on it, or ran out of time. Trying again gives the same answer,
// so it is permanent; its text is the reason in the dead letter.
type wasmEventError struct{ msg string }

func (e *wasmEventError) Error() string        { return e.msg }
func (e *wasmEventError) Is(target error) bool { return target == flow.ErrPermanent }

// errWasmTimeout marks a call that ran out of time.
var errWasmTimeout = errors.New("timeout")

// ProcessBatch sends the batch's JSON events in one call. Events whose
// payload is not JSON fail alone. A trap makes each event run again alone,
// so that only the one that traps is dead-lettered; a timeout fails the
// whole call's events.
func (p *wasmProcessor) ProcessBatch(ctx context.Context, in []*flow.Event) ([][]*flow.Event, map[int]error, error) {
	outs := make([][]*flow.Event, len(in))
	failures := map[int]error{}
	idx := make([]int, 0, len(in))
	for i, ev := range in {
		if !ev.StrictJSON() {
			failures[i] = &wasmEventError{"wasm: the payload is not valid JSON; the wasm processor takes JSON payloads only"}
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return outs, failures, nil
	}
	err := p.run(ctx, in, idx, outs, failures)
	if err == nil {
		return outs, failures, nil
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	if errors.Is(err, errWasmTimeout) || len(idx) == 1 {
		for _, i := range idx {
			failures[i] = &wasmEventError{err.Error()}
		}
		return outs, failures, nil
	}
	p.log.Warn("wasm module trapped on a batch; running its events one at a time", slog.Int("events", len(idx)), slog.String("error", err.Error()))
	for _, i := range idx {
		if err := p.run(ctx, in, []int{i}, outs, failures); err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			failures[i] = &wasmEventError{err.Error()}
		}
	}
	return outs, failures, nil
}

// run calls the module on the events in[idx...], filling outs and
// failures. An error means the call itself failed (trap, timeout, a
// broken answer); the instance is then closed.
func (p *wasmProcessor) run(ctx context.Context, in []*flow.Event, idx []int, outs [][]*flow.Event, failures map[int]error) error {
	inst, err := p.get(ctx)
	if err != nil {
		return err
	}
	answer, err := p.call(ctx, inst, wasmEncode(in, idx))
	if err == nil {
		err = wasmDecode(answer, in, idx, outs, failures)
	}
	if err != nil {
		_ = inst.mod.Close(context.WithoutCancel(ctx))
		return err
	}
	p.put(inst)
	return nil
}

// call writes input into the instance and runs flowctl_process. The
// answer points into the instance's memory: it is valid until the
// instance's next call.
func (p *wasmProcessor) call(ctx context.Context, inst *wasmInstance, input []byte) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	fail := func(what string, err error) ([]byte, error) {
		if cctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("wasm: %s did not return within timeout %s: %w", what, p.timeout, errWasmTimeout)
		}
		return nil, fmt.Errorf("wasm: %s trapped: %s", what, wasmTrapMessage(err))
	}
	res, err := inst.alloc.Call(cctx, uint64(len(input)))
	if err != nil {
		return fail(wasmAllocName, err)
	}
	ptr := uint32(res[0])
	if !inst.mem.Write(ptr, input) {
		return nil, fmt.Errorf("wasm: %s(%d) returned %d, outside the module's memory (%d bytes)", wasmAllocName, len(input), ptr, inst.mem.Size())
	}
	if res, err = inst.process.Call(cctx, uint64(ptr), uint64(len(input))); err != nil {
		return fail(wasmProcessName, err)
	}
	optr, olen := uint32(res[0]>>32), uint32(res[0])
	answer, ok := inst.mem.Read(optr, olen)
	if !ok {
		return nil, fmt.Errorf("wasm: %s returned %d bytes at %d, outside the module's memory (%d bytes)", wasmProcessName, olen, optr, inst.mem.Size())
	}
	return answer, nil
}

// wasmTrapMessage keeps the first line of a wazero error (the stack trace
// follows it).
func wasmTrapMessage(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// wasmEncode writes the events in[idx...] as JSON lines: the attributes
// first, data last.
func wasmEncode(in []*flow.Event, idx []int) []byte {
	size := 0
	for _, i := range idx {
		size += len(in[i].Data) + len(in[i].ID) + len(in[i].Type) + len(in[i].Source) + 64
	}
	b := make([]byte, 0, size)
	for _, i := range idx {
		ev := in[i]
		b = append(b, `{"id":`...)
		b = flow.AppendJSONString(b, ev.ID)
		b = append(b, `,"type":`...)
		b = flow.AppendJSONString(b, ev.Type)
		b = append(b, `,"source":`...)
		b = flow.AppendJSONString(b, ev.Source)
		if ev.Subject != "" {
			b = append(b, `,"subject":`...)
			b = flow.AppendJSONString(b, ev.Subject)
		}
		if len(ev.Metadata) > 0 {
			b = append(b, `,"metadata":{`...)
			keys := make([]string, 0, len(ev.Metadata))
			for k := range ev.Metadata {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for n, k := range keys {
				if n > 0 {
					b = append(b, ',')
				}
				b = flow.AppendJSONString(b, k)
				b = append(b, ':')
				b = flow.AppendJSONString(b, ev.Metadata[k])
			}
			b = append(b, '}')
		}
		b = append(b, `,"data":`...)
		b = append(b, bytes.TrimSpace(ev.Data)...)
		b = append(b, "}\n"...)
	}
	return b
}

// wasmResult is one line of the module's answer.
type wasmResult struct {
	Events []wasmOutEvent `json:"events"`
	Error  *string        `json:"error"`
}

// wasmOutEvent is an event the module produced; what it leaves out is the
// input event's.
type wasmOutEvent struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Source   string            `json:"source"`
	Subject  string            `json:"subject"`
	Metadata map[string]string `json:"metadata"`
	Data     json.RawMessage   `json:"data"`
}

// wasmDecode reads the answer's lines, one per event of idx, in order.
func wasmDecode(answer []byte, in []*flow.Event, idx []int, outs [][]*flow.Event, failures map[int]error) error {
	n := 0
	for len(answer) > 0 {
		line := answer
		if j := bytes.IndexByte(answer, '\n'); j >= 0 {
			line, answer = answer[:j], answer[j+1:]
		} else {
			answer = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if n == len(idx) {
			return fmt.Errorf("wasm: %s answered more than the %d results asked for (one line per input event)", wasmProcessName, len(idx))
		}
		i := idx[n]
		n++
		var r wasmResult
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("wasm: result %d of %s is not a JSON result: %v", n, wasmProcessName, err)
		}
		if r.Error != nil {
			failures[i] = &wasmEventError{"wasm module: " + *r.Error}
			continue
		}
		src := in[i]
		evs := make([]*flow.Event, 0, len(r.Events))
		for k, o := range r.Events {
			data := []byte(o.Data) // a copy: Unmarshal does not alias line
			if len(data) == 0 {
				data = src.Data
			}
			ev := src.WithData(data)
			switch {
			case o.ID != "":
				ev.ID = o.ID
			case k > 0:
				ev.ID = src.ID + "." + strconv.Itoa(k) // unique ids when one event becomes several
			}
			if o.Type != "" {
				ev.Type = o.Type
			}
			if o.Source != "" {
				ev.Source = o.Source
			}
			if o.Subject != "" {
				ev.Subject = o.Subject
			}
			if o.Metadata != nil {
				ev.Metadata = o.Metadata
			}
			evs = append(evs, ev)
		}
		outs[i] = evs
	}
	if n != len(idx) {
		return fmt.Errorf("wasm: %s answered %d results for %d events (one line per input event)", wasmProcessName, n, len(idx))
	}
	return nil
}

// wasmLogWriter logs what the module writes to stdout or stderr, a line
// at a time, so that it never mixes with a stdout sink.
type wasmLogWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *wasmLogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		j := bytes.IndexByte(w.buf, '\n')
		if j < 0 {
			break
		}
		w.log.Info("wasm module output", slog.String("line", string(w.buf[:j])))
		w.buf = w.buf[j+1:]
	}
	if len(w.buf) > 64<<10 { // a module that never ends its line
		w.log.Info("wasm module output", slog.String("line", string(w.buf)))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

var (
	_ flow.BatchProcessor = (*wasmProcessor)(nil)
	_ flow.Opener         = (*wasmProcessor)(nil)
	_ flow.Closer         = (*wasmProcessor)(nil)
)
