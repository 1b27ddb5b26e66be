// Package wirecodec holds the hand-written protobuf decoding and encoding
// shared by flowctl (internal/external) and the SDK (pkg/sdk), public
// because the SDK uses it and pkg/ must not import internal/: both read
// and write the component stream's hot messages (stream.proto) without
// the generated types, one event per input each way. The wire format is
// unchanged; this is only a faster way of reading and writing it (the
// tests compare it with the generated code, byte for byte).
//
// Strings and Data point into the message being decoded: it must not be
// written to while anything decoded from it is in use.
package wirecodec

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every error about the bytes of a message.
var ErrMalformed = errors.New("malformed message")

// Fields calls f for every field of the message b, with the field's wire
// type and its value: the contents of a bytes field, a varint's value
// (other wire types are skipped over, with neither). It stops at f's first
// error.
func Fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return ErrMalformed
		}
		b = b[l:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, l = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return ErrMalformed
		}
		b = b[l:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// String returns a proto3 string field, which must be UTF-8, without
// copying it: b must not be written to while the string is in use.
func String(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: a string field is not valid UTF-8", ErrMalformed)
	}
	if len(b) == 0 {
		return "", nil
	}
	return unsafe.String(&b[0], len(b)), nil
}

// Timestamp decodes a google.protobuf.Timestamp.
func Timestamp(b []byte) (secs, nanos int64, err error) {
	err = Fields(b, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if typ == protowire.VarintType {
			switch num {
			case 1:
				secs = int64(x)
			case 2:
				nanos = int64(int32(x))
			}
		}
		return nil
	})
	return secs, nanos, err
}

// MapEntry decodes an entry of a map<string, string> field into m.
func MapEntry(b []byte, m map[string]string) error {
	var k, v string
	err := Fields(b, func(num protowire.Number, typ protowire.Type, raw []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		var err error
		switch num {
		case 1:
			k, err = String(raw)
		case 2:
			v, err = String(raw)
		}
		return err
	})
	if err != nil {
		return err
	}
	m[k] = v
	return nil
}

// Event is a wire Event (stream.proto) as DecodeEvent reads it: the
// attributes flow.Event and sdk.Event have in common, for each side to
// copy into its own type.
type Event struct {
	ID              string
	Source          string
	Type            string
	Subject         string
	DataContentType string
	Time            time.Time // zero when the message has no time
	Data            []byte    // capacity capped: appending reallocates
	Metadata        map[string]string
}

// DecodeEvent decodes a wire Event into e, which should be zero, pointing
// into b. Unknown fields are skipped.
func DecodeEvent(b []byte, e *Event) error {
	var secs, nanos int64
	hasTime := false
	err := Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		var err error
		switch num {
		case 1:
			e.ID, err = String(v)
		case 2:
			e.Source, err = String(v)
		case 3:
			e.Type, err = String(v)
		case 4:
			hasTime = true
			secs, nanos, err = Timestamp(v)
		case 5:
			e.Subject, err = String(v)
		case 6:
			e.DataContentType, err = String(v)
		case 7:
			e.Data = v[:len(v):len(v)]
		case 8:
			if e.Metadata == nil {
				e.Metadata = map[string]string{}
			}
			err = MapEntry(v, e.Metadata)
		}
		return err
	})
	if err != nil {
		return err
	}
	if hasTime {
		e.Time = time.Unix(secs, nanos).UTC()
	}
	return nil
}
