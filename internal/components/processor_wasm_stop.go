package components

// Stopping a module that loops, cheaply.
//
// wazero's WithCloseOnContextDone makes every loop iteration of the module
// leave the machine code for Go and back (a check that the module is not
// closed, done in Go so that the Go scheduler can preempt). Go compiles
// every function to a wasm loop (its goroutine switching), so a Go guest
// pays that exit on almost every call and jump: measured, W1's map step
// took ~1 ms per event with it and ~µs without it; a Rust module that
// scans bytes ran 25× slower.
//
// Instead, wasmAddStop rewrites the module before it is compiled: it adds
// a mutable i32 global, exported as wasmStopName, and at the head of
// every loop the instructions
//
//	global.get $stop
//	if
//	  unreachable
//	end
//
// which the compiler turns into a load and a branch. When a call runs out
// of time the host sets the global to 1 from another goroutine (wazero's
// MutableGlobal.Set writes the instance's global slot, which the machine
// code loads again at every loop head), and the module traps at its next
// loop iteration. Straight-line code ends by itself, and recursion without
// a loop ends in a stack overflow trap, so loop heads are enough.
//
// The rewriter decodes every instruction of the code section (it must find
// loop opcodes at instruction boundaries). An opcode it does not know makes
// it refuse, and the processor then falls back to WithCloseOnContextDone:
// slower, equally safe.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// wasmStopName is the export name of the global the host sets to stop a
// call.
const wasmStopName = "flowctl_host_stop"

// Section ids (WebAssembly core spec, 5.5.2).
const (
	wasmSecCustom = 0
	wasmSecImport = 2
	wasmSecGlobal = 6
	wasmSecExport = 7
	wasmSecCode   = 10
)

// wasmSectionOrder is the position of each known section id in a module:
// a new global section goes after every section ordered before it.
var wasmSectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

type wasmSection struct {
	id   byte
	body []byte
}

// wasmAddStop returns the module with the stop global and its checks at
// every loop head, or an error saying why it cannot (the module is then
// run unchanged, with wazero's slower close-on-context-done).
func wasmAddStop(code []byte) ([]byte, error) {
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
		secs = append(secs, wasmSection{id, body})
	}
	importedGlobals, definedGlobals := uint32(0), uint32(0)
	for _, s := range secs {
		switch s.id {
		case wasmSecImport:
			n, err := wasmCountImportedGlobals(s.body)
			if err != nil {
				return nil, err
			}
			importedGlobals = n
		case wasmSecGlobal:
			sr := &wasmReader{b: s.body}
			definedGlobals = sr.u32()
			if sr.err != nil {
				return nil, sr.err
			}
		}
	}
	stop := importedGlobals + definedGlobals
	check := append(append([]byte{0x23}, wasmAppendU32(nil, stop)...), 0x04, 0x40, 0x00, 0x0B)
	newGlobal := []byte{0x7F, 0x01, 0x41, 0x00, 0x0B} // mut i32 = i32.const 0

	var out [][]byte
	addedGlobal, addedExport, sawCode := false, false, false
	emit := func(id byte, body []byte) {
		sec := append([]byte{id}, wasmAppendU32(nil, uint32(len(body)))...)
		out = append(out, append(sec, body...))
	}
	for _, s := range secs {
		if !addedGlobal && s.id != wasmSecCustom && wasmSectionOrder[s.id] > wasmSectionOrder[wasmSecGlobal] {
			emit(wasmSecGlobal, append(wasmAppendU32(nil, 1), newGlobal...))
			addedGlobal = true
		}
		switch s.id {
		case wasmSecCustom:
			// DWARF sections point at code offsets, which move.
			sr := &wasmReader{b: s.body}
			name := sr.name()
			if sr.err == nil && strings.HasPrefix(name, ".debug_") {
				continue
			}
			emit(s.id, s.body)
		case wasmSecGlobal:
			sr := &wasmReader{b: s.body}
			n := sr.u32()
			body := append(wasmAppendU32(nil, n+1), s.body[sr.off:]...)
			emit(s.id, append(body, newGlobal...))
			addedGlobal = true
		case wasmSecExport:
			body, err := wasmAddExport(s.body, stop)
			if err != nil {
				return nil, err
			}
			emit(s.id, body)
			addedExport = true
		case wasmSecCode:
			body, err := wasmAddLoopChecks(s.body, check)
			if err != nil {
				return nil, err
			}
			emit(s.id, body)
			sawCode = true
		default:
			emit(s.id, s.body)
		}
	}
	if !addedExport || !sawCode {
		return nil, errors.New("the module has no export or no code section")
	}
	res := append([]byte(nil), code[:8]...)
	for _, s := range out {
		res = append(res, s...)
	}
	return res, nil
}

func wasmCountImportedGlobals(body []byte) (uint32, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	globals := uint32(0)
	for range n {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0: // function: type index
			r.u32()
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
			return 0, fmt.Errorf("import of unknown kind %d", kind)
		}
		if r.err != nil {
			return 0, r.err
		}
	}
	return globals, r.err
}

func wasmAddExport(body []byte, global uint32) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	entries := r.off
	for range n {
		if r.name() == wasmStopName {
			return nil, fmt.Errorf("the module already exports %s", wasmStopName)
		}
		r.byte()
		r.u32()
	}
	if r.err != nil {
		return nil, r.err
	}
	out := append(wasmAppendU32(nil, n+1), body[entries:]...)
	out = wasmAppendU32(out, uint32(len(wasmStopName)))
	out = append(out, wasmStopName...)
	out = append(out, 3) // global
	return wasmAppendU32(out, global), nil
}

// wasmAddLoopChecks copies the code section, inserting check after every
// loop instruction's block type.
func wasmAddLoopChecks(body, check []byte) ([]byte, error) {
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
		if fn, err = wasmAddLoopChecksFunc(fn[:0], code, check); err != nil {
			return nil, fmt.Errorf("function %d of the code section: %w", i, err)
		}
		out = wasmAppendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	return out, r.err
}

func wasmAddLoopChecksFunc(out, code, check []byte) ([]byte, error) {
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
		op := r.byte()
		switch {
		case op == 0x03: // loop
			r.blocktype()
			out = append(out, code[start:r.off]...)
			out = append(out, check...)
			continue
		case op == 0x02 || op == 0x04: // block, if
			r.blocktype()
		case op <= 0x01, op == 0x05, op == 0x0B, op == 0x0F, op == 0x1A, op == 0x1B, op == 0x0A, op == 0xD1,
			op >= 0x45 && op <= 0xC4: // no immediate
		case op == 0x08, op == 0x0C, op == 0x0D, op == 0x10, op == 0x12, op == 0x14, op == 0x15,
			op >= 0x20 && op <= 0x26, op == 0x3F, op == 0x40, op == 0xD2: // one index
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
		out = append(out, code[start:r.off]...)
	}
	return out, r.err
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
