package wirecodec

import (
	"fmt"

	"google.golang.org/grpc/mem"
)

// Marshal returns a message of exactly size bytes, written by appendTo,
// as a gRPC codec's Marshal returns it (encoding.CodecV2): in a buffer
// from gRPC's default pool, which gRPC puts back once the bytes are on the
// connection, or in a plain slice below the size at which pooling pays
// (mem.IsBelowBufferPoolingThreshold). flowctl's batches and the SDK's
// answers are both written this way.
//
// appendTo appends the message to the empty slice it is given (of
// capacity size at least) and returns the result. An error from it is
// returned as is; a result of any other length than size is a bug in the
// caller's sizing and returned as an error. On error the buffer goes back
// to the pool.
func Marshal(size int, appendTo func([]byte) ([]byte, error)) (mem.BufferSlice, error) {
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := appendTo(make([]byte, 0, size))
		if err == nil && len(b) != size {
			err = fmt.Errorf("encoded %d bytes, sized %d", len(b), size)
		}
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	b, err := appendTo((*buf)[:0])
	if err == nil && len(b) != size {
		err = fmt.Errorf("encoded %d bytes, sized %d", len(b), size)
	}
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}
