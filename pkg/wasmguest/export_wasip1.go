//go:build wasip1

package wasmguest

import "unsafe"

// The host's buffers live in Go memory: inBuf holds the batch the host
// writes, outBuf the answer it reads. Both stay referenced by these
// globals, so the garbage collector neither frees nor moves them between
// the host's calls.
var inBuf, outBuf []byte

// alloc returns the address of a buffer of size bytes for the next batch.
//
//go:wasmexport flowctl_alloc
func alloc(size uint32) uint32 {
	if uint32(cap(inBuf)) < size {
		inBuf = make([]byte, size)
	}
	inBuf = inBuf[:size]
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&inBuf[0])))
}

// process handles the batch at ptr (from alloc) and returns where the
// answer is: the address in the high 32 bits, the length in the low ones.
//
//go:wasmexport flowctl_process
func process(ptr, size uint32) uint64 {
	_ = ptr // always inBuf: the host wrote where alloc said
	outBuf = Batch(inBuf[:size], outBuf[:0])
	if len(outBuf) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&outBuf[0])))<<32 | uint64(len(outBuf))
}
