package wirecodec

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Encoding: the batches and answers of the component streams carry one
// wire Event per input, written here straight from each side's own event
// type (as an Event, a struct copy without allocation) into one buffer.
// Sizes come first (protobuf prefixes a nested message with its length),
// then the bytes are appended. The bytes are those the generated code
// writes for the same message, up to the order of map entries (which
// protobuf leaves open; with Deterministic it sorts them).

// SizeString is the size of a string field num holding s (0 when s is
// empty: proto3 leaves it out).
func SizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

// AppendString appends a string field (nothing when s is empty).
func AppendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// SizeVarint is the size of a varint field num holding x (0 when x is 0).
func SizeVarint(num protowire.Number, x uint64) int {
	if x == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(x)
}

// AppendVarint appends a varint field (nothing when x is 0).
func AppendVarint(b []byte, num protowire.Number, x uint64) []byte {
	if x == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, x)
}

// SizeMessage is the size of a message field num whose contents are n
// bytes (a present message is written even when empty).
func SizeMessage(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// AppendMessageHeader appends the tag and length of a message field num
// whose n bytes of contents follow.
func AppendMessageHeader(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

// timestamp returns e.Time as google.protobuf.Timestamp's seconds and
// nanos, as varints (timestamppb.New's values).
func (e *Event) timestamp() (secs, nanos uint64) {
	return uint64(e.Time.Unix()), uint64(int64(int32(e.Time.Nanosecond())))
}

// mapEntrySize is the size of a map<string, string> entry. Its key and
// value are written even when empty, as the generated code does.
func mapEntrySize(k, v string) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
}

// EventSize is the size of e as a wire Event (without its tag and length).
func EventSize(e *Event) int {
	n := SizeString(1, e.ID) + SizeString(2, e.Source) + SizeString(3, e.Type) +
		SizeString(5, e.Subject) + SizeString(6, e.DataContentType)
	if len(e.Data) > 0 {
		n += protowire.SizeTag(7) + protowire.SizeBytes(len(e.Data))
	}
	if !e.Time.IsZero() {
		s, ns := e.timestamp()
		n += SizeMessage(4, SizeVarint(1, s)+SizeVarint(2, ns))
	}
	for k, v := range e.Metadata {
		n += SizeMessage(8, mapEntrySize(k, v))
	}
	return n
}

// AppendEvent appends e as a wire Event (without its tag and length:
// EventSize bytes). Strings must be UTF-8, as proto3 requires; an error
// wraps ErrMalformed.
func AppendEvent(b []byte, e *Event) ([]byte, error) {
	for _, s := range [...]string{e.ID, e.Source, e.Type, e.Subject, e.DataContentType} {
		if !utf8.ValidString(s) {
			return b, fmt.Errorf("%w: event %q: a string attribute is not valid UTF-8", ErrMalformed, e.ID)
		}
	}
	b = AppendString(b, 1, e.ID)
	b = AppendString(b, 2, e.Source)
	b = AppendString(b, 3, e.Type)
	if !e.Time.IsZero() {
		s, ns := e.timestamp()
		b = AppendMessageHeader(b, 4, SizeVarint(1, s)+SizeVarint(2, ns))
		b = AppendVarint(b, 1, s)
		b = AppendVarint(b, 2, ns)
	}
	b = AppendString(b, 5, e.Subject)
	b = AppendString(b, 6, e.DataContentType)
	if len(e.Data) > 0 {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, e.Data)
	}
	for k, v := range e.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return b, fmt.Errorf("%w: event %q: metadata %q is not valid UTF-8", ErrMalformed, e.ID, k)
		}
		b = AppendMessageHeader(b, 8, mapEntrySize(k, v))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b, nil
}

// BatchSize is the size of a wire Batch (without its tag and length) of
// events whose EventSizes are sizes.
func BatchSize(seq uint64, redelivered bool, sizes []int) int {
	n := SizeVarint(1, seq)
	for _, s := range sizes {
		n += SizeMessage(2, s)
	}
	if redelivered {
		n += SizeVarint(3, 1)
	}
	return n
}
