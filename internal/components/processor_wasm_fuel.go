package components

// Stopping a module that loops, cheaply and without stalling Go.
//
// wazero's WithCloseOnContextDone calls a trampoline at the head of every
// loop iteration to see whether the module was closed. Go compiles every
// function to a wasm loop (its goroutine switching), so a Go guest pays
// that call on almost every jump: W1's map step took ~250–400 µs per event
// with it. A first replacement (a global the host set at the timeout,
// checked at every loop head) was fast but could deadlock the process: a
// goroutine spinning in machine code has no safe point, so a garbage
// collection waiting for it, and the timer that would have set the global,
// waited for ever.
//
// wasmAddFuel rewrites the module before it is compiled. It imports one
// host function, flowctl.fuel, adds a mutable i32 global (the fuel), and at
// the head of every loop inserts
//
//	global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	global.get $fuel  i32.eqz
//	if
//	  call $flowctl.fuel          ;; back in Go: a safe point
//	  i32.const wasmFuelSteps  global.set $fuel
//	end
//
// which the compiler turns into a load, a subtraction, a store and a
// branch. Every wasmFuelSteps loop iterations the module calls out to Go,
// where the garbage collector and the scheduler can stop the goroutine,
// and the host function traps the call when its context is done (the
// timeout). Straight-line code ends by itself, and recursion without a loop
// ends in a stack overflow trap, so loop heads are enough.
//
// Importing a function renumbers the module's own functions (imports come
// first), so every function index is moved by one: call, return_call and
// ref.func in code and in constant expressions, exports, the start
// function, element segments and the function names of the "name" section
// (its local and label names are dropped; DWARF sections, which point at
// code offsets, too).
//
// The rewriter decodes every instruction of the code section. An opcode
// or section it does not know makes it refuse, and the processor then
// falls back to WithCloseOnContextDone: slower, equally safe.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// wasmTryFuel is false only in tests of the fallback.
var wasmTryFuel = true

const (
	// wasmFuelModule and wasmFuelFunc name the imported host function.
	wasmFuelModule = "flowctl"
	wasmFuelFunc   = "fuel"
	// wasmFuelSteps is how many loop iterations a module runs between two
	// calls to the host: ~0.1–1 ms of a tight loop, the longest a garbage
	// collection waits for a module, and how late a timeout can be seen.
	wasmFuelSteps = 1 << 17
)

// wasmFuelCalls counts the calls to wasmFuel (tests wait on it).
var wasmFuelCalls atomic.Int64

// wasmFuel is the host function: it only returns to the module (the call
// itself was the point: a safe point for Go), unless the call's context is
// done, which traps the call.
func wasmFuel(ctx context.Context) {
	wasmFuelCalls.Add(1)
	if err := ctx.Err(); err != nil {
		panic(fmt.Errorf("stopped: %w", err))
	}
}

// Section ids (WebAssembly core spec, 5.5.2).
const (
	wasmSecCustom = 0
	wasmSecType   = 1
	wasmSecImport = 2
	wasmSecGlobal = 6
	wasmSecExport = 7
	wasmSecStart  = 8
	wasmSecElem   = 9
	wasmSecCode   = 10
)

// wasmSectionOrder is the position of each known section id in a module
// (13, tags, comes before globals): a new section goes after every section
// ordered before it.
var wasmSectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

type wasmSection struct {
	id   byte
	body []byte
}

// wasmAddFuel returns the module with the fuel import, global and checks,
// or an error saying why it cannot (the module then runs unchanged, with
// wazero's slower close-on-context-done).
func wasmAddFuel(code []byte) ([]byte, error) {
	if len(code) < 8 || !bytes.Equal(code[:4], []byte("\x00asm")) || binary.LittleEndian.Uint32(code[4:8]) != 1 {
		return nil, errors.New("not a WebAssembly 1.0 binary module")
	}
	r := &wasmReader{b: code, off: 8}
	var secs []wasmSection
	for r.off < len(r.b) {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, r.err
		}
		if _, ok := wasmSectionOrder[id]; !ok && id != wasmSecCustom {
			return nil, fmt.Errorf("unknown section %d", id)
		}
		secs = append(secs, wasmSection{id, body})
	}
	var types, importedFuncs, importedGlobals, definedGlobals uint32
	for _, s := range secs {
		sr := &wasmReader{b: s.body}
		switch s.id {
		case wasmSecType:
			types = sr.u32()
		case wasmSecImport:
			var err error
			if importedFuncs, importedGlobals, err = wasmCountImports(s.body); err != nil {
				return nil, err
			}
		case wasmSecGlobal:
			definedGlobals = sr.u32()
		}
		if sr.err != nil {
			return nil, sr.err
		}
	}
	rw := &wasmRewrite{fuelFunc: importedFuncs, fuelGlobal: importedGlobals + definedGlobals}
	rw.check = wasmFuelCheck(rw.fuelFunc, rw.fuelGlobal)
	fuelType := []byte{0x60, 0x00, 0x00} // func () -> ()
	fuelImport := wasmAppendName(nil, wasmFuelModule)
	fuelImport = wasmAppendName(fuelImport, wasmFuelFunc)
	fuelImport = wasmAppendU32(append(fuelImport, 0x00), types) // a function of the new type
	fuelGlobal := append([]byte{0x7F, 0x01, 0x41}, wasmAppendS32(nil, wasmFuelSteps)...)
	fuelGlobal = append(fuelGlobal, 0x0B) // mut i32 = wasmFuelSteps

	var out []byte
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = wasmAppendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	added := map[byte]bool{}
	addMissing := func(before byte) {
		for _, id := range []byte{wasmSecType, wasmSecImport, wasmSecGlobal} {
			if !added[id] && (before == 0xFF || wasmSectionOrder[before] > wasmSectionOrder[id]) {
				switch id {
				case wasmSecType:
					emit(id, append(wasmAppendU32(nil, 1), fuelType...))
				case wasmSecImport:
					emit(id, append(wasmAppendU32(nil, 1), fuelImport...))
				case wasmSecGlobal:
					emit(id, append(wasmAppendU32(nil, 1), fuelGlobal...))
				}
				added[id] = true
			}
		}
	}
	sawCode := false
	for _, s := range secs {
		if s.id != wasmSecCustom {
			addMissing(s.id)
		}
		var body []byte
		var err error
		switch s.id {
		case wasmSecCustom:
			body, err = rw.custom(s.body)
			if body == nil && err == nil {
				continue // dropped
			}
		case wasmSecType:
			body, err = wasmAppendVecItem(s.body, fuelType)
			added[s.id] = true
		case wasmSecImport:
			// After the module's own imports: the fuel function's index is
			// the number of imported functions before it.
			body, err = wasmAppendVecItem(s.body, fuelImport)
			added[s.id] = true
		case wasmSecGlobal:
			body, err = rw.globals(s.body, fuelGlobal)
			added[s.id] = true
		case wasmSecExport:
			body, err = rw.exports(s.body)
		case wasmSecStart:
			sr := &wasmReader{b: s.body}
			f := sr.u32()
			body, err = wasmAppendU32(nil, rw.fn(f)), sr.err
		case wasmSecElem:
			body, err = rw.elems(s.body)
		case wasmSecCode:
			body, err = rw.code(s.body)
			sawCode = true
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		emit(s.id, body)
	}
	addMissing(0xFF)
	if !sawCode {
		return nil, errors.New("the module has no code section")
	}
	return append(append([]byte(nil), code[:8]...), out...), nil
}

// wasmFuelCheck is the code inserted at every loop head.
func wasmFuelCheck(fuelFunc, fuelGlobal uint32) []byte {
	g := wasmAppendU32(nil, fuelGlobal)
	c := append([]byte{0x23}, g...)               // global.get $fuel
	c = append(c, 0x41, 0x01, 0x6B, 0x24)         // i32.const 1, i32.sub, global.set
	c = append(append(c, g...), 0x23)             // $fuel, global.get
	c = append(append(c, g...), 0x45, 0x04, 0x40) // $fuel, i32.eqz, if (empty)
	c = wasmAppendU32(append(c, 0x10), fuelFunc)  // call $flowctl.fuel
	c = append(append(c, 0x41), wasmAppendS32(nil, wasmFuelSteps)...)
	c = append(append(c, 0x24), g...) // global.set $fuel
	return append(c, 0x0B)            // end
}

// wasmRewrite moves function indices past the new import and inserts the
// fuel check.
type wasmRewrite struct {
	fuelFunc   uint32 // index of the imported fuel function = imported functions before
	fuelGlobal uint32
	check      []byte
}

// fn maps a function index of the original module to the rewritten one.
func (w *wasmRewrite) fn(i uint32) uint32 {
	if i >= w.fuelFunc {
		return i + 1
	}
	return i
}

func wasmCountImports(body []byte) (funcs, globals uint32, err error) {
	r := &wasmReader{b: body}
	n := r.u32()
	for range n {
		mod, name := r.name(), r.name()
		if mod == wasmFuelModule && name == wasmFuelFunc {
			return 0, 0, fmt.Errorf("the module already imports %s.%s", wasmFuelModule, wasmFuelFunc)
		}
		switch kind := r.byte(); kind {
		case 0: // function: type index
			r.u32()
			funcs++
		case 1: // table: reftype, limits
			r.byte()
			r.limits()
		case 2: // memory: limits
			r.limits()
		case 3: // global: valtype, mut
			r.byte()
			r.byte()
			globals++
		case 4: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			return 0, 0, fmt.Errorf("import of unknown kind %d", kind)
		}
		if r.err != nil {
			return 0, 0, r.err
		}
	}
	return funcs, globals, r.err
}

// wasmAppendVecItem appends an encoded item to a vector section.
func wasmAppendVecItem(body, item []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	return append(append(wasmAppendU32(nil, n+1), body[r.off:]...), item...), nil
}

// globals appends the fuel global, moving ref.func in the initialisers.
func (w *wasmRewrite) globals(body, fuelGlobal []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := wasmAppendU32(nil, n+1)
	for range n {
		start := r.off
		r.valtype()
		r.byte() // mutability
		out = append(out, body[start:r.off]...)
		var err error
		if out, err = w.expr(out, r); err != nil {
			return nil, err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return append(out, fuelGlobal...), nil
}

func (w *wasmRewrite) exports(body []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := wasmAppendU32(nil, n)
	for range n {
		out = wasmAppendName(out, r.name())
		kind := r.byte()
		idx := r.u32()
		if kind == 0 {
			idx = w.fn(idx)
		}
		out = wasmAppendU32(append(out, kind), idx)
	}
	return out, r.err
}

// elems moves the function indices of element segments (the 8 encodings
// of the core spec, 5.5.12).
func (w *wasmRewrite) elems(body []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := wasmAppendU32(nil, n)
	var err error
	for range n {
		flags := r.u32()
		out = wasmAppendU32(out, flags)
		if flags > 7 {
			return nil, fmt.Errorf("element segment of unknown kind %d", flags)
		}
		if flags&2 != 0 && flags&1 == 0 { // 2, 6: table index
			out = wasmAppendU32(out, r.u32())
		}
		if flags&1 == 0 { // 0, 2, 4, 6: offset expression
			if out, err = w.expr(out, r); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // 1, 2, 3, 5, 6, 7: element kind or reference type
			out = append(out, r.byte())
		}
		items := r.u32()
		out = wasmAppendU32(out, items)
		for range items {
			if flags&4 == 0 { // function indices
				out = wasmAppendU32(out, w.fn(r.u32()))
			} else if out, err = w.expr(out, r); err != nil {
				return nil, err
			}
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	return out, r.err
}

// expr copies a constant expression up to and including its end.
func (w *wasmRewrite) expr(out []byte, r *wasmReader) ([]byte, error) {
	for r.err == nil {
		start := r.off
		op := r.byte()
		var err error
		out, err = w.instr(out, r, op, start, false)
		if err != nil {
			return nil, err
		}
		if op == 0x0B {
			return out, nil
		}
	}
	return nil, r.err
}

// custom keeps a custom section, moves the function names of the "name"
// section, and drops what points into the code (DWARF; local and label
// names). A nil body without error means: drop the section.
func (w *wasmRewrite) custom(body []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	name := r.name()
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case strings.HasPrefix(name, ".debug_"):
		return nil, nil
	case name != "name":
		return body, nil
	}
	out := append([]byte(nil), body[:r.off]...)
	for r.off < len(r.b) && r.err == nil {
		id := r.byte()
		sub := r.bytes(int(r.u32()))
		switch id {
		case 1: // function names: vec(funcidx name)
			sr := &wasmReader{b: sub}
			n := sr.u32()
			m := wasmAppendU32(nil, n)
			for range n {
				m = wasmAppendU32(m, w.fn(sr.u32()))
				m = wasmAppendName(m, sr.name())
			}
			if sr.err != nil {
				return nil, nil // a broken name section is only lost names
			}
			out = wasmAppendU32(append(out, id), uint32(len(m)))
			out = append(out, m...)
		case 2, 3: // local and label names, keyed by function: dropped
		default:
			out = wasmAppendU32(append(out, id), uint32(len(sub)))
			out = append(out, sub...)
		}
	}
	if r.err != nil {
		return nil, nil
	}
	return out, nil
}

// code copies the code section, moving function indices and inserting the
// fuel check after every loop instruction's block type.
func (w *wasmRewrite) code(body []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := wasmAppendU32(nil, n)
	var fn []byte
	for i := range n {
		size := r.u32()
		code := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		var err error
		if fn, err = w.function(fn[:0], code); err != nil {
			return nil, fmt.Errorf("function %d of the code section: %w", i, err)
		}
		out = wasmAppendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	return out, r.err
}

func (w *wasmRewrite) function(out, code []byte) ([]byte, error) {
	r := &wasmReader{b: code}
	groups := r.u32()
	for range groups {
		r.u32()
		r.valtype()
	}
	if r.err != nil {
		return nil, r.err
	}
	out = append(out, code[:r.off]...)
	for r.off < len(r.b) && r.err == nil {
		start := r.off
		var err error
		if out, err = w.instr(out, r, r.byte(), start, true); err != nil {
			return nil, err
		}
	}
	return out, r.err
}

// instr copies one instruction (opcode op at start, read) with its
// immediates, moving function indices; in code, a loop gains the check.
func (w *wasmRewrite) instr(out []byte, r *wasmReader, op byte, start int, inCode bool) ([]byte, error) {
	switch {
	case op == 0x03: // loop
		r.blocktype()
		out = append(out, r.b[start:r.off]...)
		if inCode {
			out = append(out, w.check...)
		}
		return out, r.err
	case op == 0x10, op == 0x12, op == 0xD2: // call, return_call, ref.func
		idx := r.u32()
		return wasmAppendU32(append(out, op), w.fn(idx)), r.err
	case op == 0x02 || op == 0x04: // block, if
		r.blocktype()
	case op <= 0x01, op == 0x05, op == 0x0B, op == 0x0F, op == 0x1A, op == 0x1B, op == 0x0A, op == 0xD1,
		op >= 0x45 && op <= 0xC4: // no immediate
	case op == 0x08, op == 0x0C, op == 0x0D, op == 0x14, op == 0x15,
		op >= 0x20 && op <= 0x26, op == 0x3F, op == 0x40: // one index
		r.u32()
	case op == 0x0E: // br_table
		for range r.u32() + 1 {
			r.u32()
		}
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1C: // select t*
		for range r.u32() {
			r.valtype()
		}
	case op == 0x1F: // try_table
		r.blocktype()
		for range r.u32() {
			switch kind := r.byte(); kind {
			case 0, 1:
				r.u32()
				r.u32()
			case 2, 3:
				r.u32()
			default:
				return nil, fmt.Errorf("try_table catch of unknown kind %d", kind)
			}
		}
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x41:
		r.leb(32)
	case op == 0x42:
		r.leb(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xD0: // ref.null
		r.valtype()
	case op == 0xFC:
		switch sub := r.u32(); {
		case sub <= 7:
		case sub == 8, sub == 10, sub == 12, sub == 14:
			r.u32()
			r.u32()
		case sub <= 17:
			r.u32()
		default:
			return nil, fmt.Errorf("unknown instruction 0xFC %d", sub)
		}
	case op == 0xFD: // SIMD
		switch sub := r.u32(); {
		case sub <= 0x0B, sub == 0x5C, sub == 0x5D:
			r.memarg()
		case sub == 0x0C, sub == 0x0D:
			r.bytes(16)
		case sub >= 0x15 && sub <= 0x22:
			r.byte()
		case sub >= 0x54 && sub <= 0x5B:
			r.memarg()
			r.byte()
		}
	case op == 0xFE: // threads
		switch sub := r.u32(); {
		case sub == 0x03:
			r.byte()
		case sub <= 0x02, sub >= 0x10 && sub <= 0x4E:
			r.memarg()
		default:
			return nil, fmt.Errorf("unknown instruction 0xFE %d", sub)
		}
	default:
		return nil, fmt.Errorf("unknown instruction 0x%02X at byte %d", op, start)
	}
	return append(out, r.b[start:r.off]...), r.err
}

// wasmReader reads a module's encoding; the first error sticks and later
// reads return zeros.
type wasmReader struct {
	b   []byte
	off int
	err error
}

func (r *wasmReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

func (r *wasmReader) byte() byte {
	if r.off >= len(r.b) {
		r.fail(errors.New("unexpected end of the module"))
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *wasmReader) bytes(n int) []byte {
	if n < 0 || n > len(r.b)-r.off {
		r.fail(errors.New("unexpected end of the module"))
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

// leb skips a LEB128 number of at most bits bits and returns its low 64
// bits (unsigned reading; callers use it for indices and to skip).
func (r *wasmReader) leb(bits int) uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		if shift >= bits+7 {
			r.fail(errors.New("LEB128 number too long"))
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7F) << shift
		}
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *wasmReader) u32() uint32 { return uint32(r.leb(32)) }

func (r *wasmReader) name() string { return string(r.bytes(int(r.u32()))) }

func (r *wasmReader) limits() {
	flags := r.byte()
	r.leb(64)
	if flags&1 != 0 {
		r.leb(64)
	}
}

func (r *wasmReader) memarg() {
	if align := r.u32(); align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.leb(64)
}

// valtype reads a value type: one byte for the number, vector and
// reference types this decoder knows.
func (r *wasmReader) valtype() {
	switch t := r.byte(); t {
	case 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F, 0x69:
	default:
		r.fail(fmt.Errorf("unknown value type 0x%02X", t))
	}
}

// blocktype reads a block type: empty, one value type, or a type index
// (a signed LEB128 of 33 bits).
func (r *wasmReader) blocktype() {
	if r.off < len(r.b) {
		switch r.b[r.off] {
		case 0x40, 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F, 0x69:
			r.off++
			return
		}
	}
	r.leb(33)
}

func wasmAppendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// wasmAppendS32 appends a signed LEB128 (i32.const's immediate).
func wasmAppendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func wasmAppendName(b []byte, s string) []byte {
	return append(wasmAppendU32(b, uint32(len(s))), s...)
}
