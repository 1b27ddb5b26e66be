package flow

import (
	"sync"
	"sync/atomic"
	"time"
)

// MaxBatch is the largest batch a source hands to Emit and the engine
// passes between components.
const MaxBatch = 256

// Event is one event flowing through a pipeline. Attributes follow
// CloudEvents names. An Event is immutable once emitted: a processor that
// changes one makes a new one (see With*), and nobody modifies Data or
// Metadata afterwards (the parsed view may point into Data). Data keeps the
// raw bytes as they arrived; Value parses them at most once, safely from
// several goroutines.
type Event struct {
	ID              string
	Source          string
	Type            string
	Subject         string
	DataContentType string
	Time            time.Time
	// Data is the payload, JSON unless DataContentType says otherwise. It
	// must not be modified once the event exists: the parsed view shares
	// its memory.
	Data []byte
	// Metadata holds string extension attributes.
	Metadata map[string]string

	view lazyView
}

// lazyView is the parsed payload and what validation learnt about it. It
// holds pointers, not the values, so that an event (every source builds
// one per line, every map one more) stays small: the parsed value is
// rare on the hot path. A copy of the event (WithType) inherits what
// exists.
type lazyView struct {
	// parsed is set once by Value; racing first callers may both parse,
	// the first to store wins and every caller returns its result.
	parsed atomic.Pointer[parsedView]
	// strict caches StrictJSON: 0 not yet checked, 1 valid, 2 not.
	strict atomic.Uint32
	// members is the index StrictJSON builds of a top-level object's
	// members (nil for other payloads and objects it cannot index). It
	// is stored before strict, so whoever reads strict == 1 sees it.
	members atomic.Pointer[MemberIndex]
}

// parsedView is Value's result.
type parsedView struct {
	value any
	err   error
}

// Value returns the parsed JSON payload (objects as map[string]any, arrays
// as []any, strings, integers as int64, other numbers as float64, bool,
// nil). Every call on an event returns the same result, and it is safe
// for concurrent use. The result must not be modified: it is shared by
// every reader.
func (e *Event) Value() (any, error) {
	if p := e.view.parsed.Load(); p != nil {
		return p.value, p.err
	}
	return e.parseSlow()
}

func (e *Event) parseSlow() (any, error) {
	v, err := parseJSON(e.Data)
	p := &parsedView{value: v, err: err}
	if !e.view.parsed.CompareAndSwap(nil, p) {
		p = e.view.parsed.Load()
	}
	return p.value, p.err
}

// StrictJSON reports whether Data passes ValidateJSON, checking at most
// once per event (racing callers may both check; they agree). Data that
// does has exactly one reading, so the raw readers of rawjson.go give the
// values Value would, and Value cannot fail on it. The same pass indexes
// the members of a top-level object (see Index).
func (e *Event) StrictJSON() bool {
	switch e.view.strict.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	idx, ok := validateIndexed(e.Data)
	if ok {
		e.view.members.Store(idx)
		e.view.strict.Store(1)
	} else {
		e.view.strict.Store(2)
	}
	return ok
}

// CheckStrictJSON runs StrictJSON on every event of evs that was not
// checked yet, with the member indices of all of them in one allocation
// instead of one each: what a source calls on a batch it built, before
// emitting it. The verdicts are the ones StrictJSON gives.
func CheckStrictJSON(evs []*Event) {
	var slab []MemberIndex
	for _, e := range evs {
		if e.view.strict.Load() != 0 {
			continue
		}
		if len(slab) == 0 {
			slab = make([]MemberIndex, len(evs))
		}
		indexed, ok := validateInto(e.Data, &slab[0])
		if !ok {
			e.view.strict.Store(2)
			continue
		}
		if indexed {
			e.view.members.Store(&slab[0])
			slab = slab[1:]
		}
		e.view.strict.Store(1)
	}
}

// Index returns the offsets of the members of the payload's top-level
// object, which StrictJSON records as it validates: nil when the payload
// is not strict JSON, not an object, or an object it does not index (more
// than a few members, or a key with escapes).
func (e *Event) Index() *MemberIndex {
	if !e.StrictJSON() {
		return nil
	}
	return e.view.members.Load()
}

// Parsed reports whether Value was already computed, so a sink or
// processor can tell a pass-through event (write Data as is) from one it
// would have to parse.
func (e *Event) Parsed() bool { return e.view.parsed.Load() != nil }

// WithData returns a copy of e carrying data as its payload. The copy's
// lazy view starts empty.
func (e *Event) WithData(data []byte) *Event {
	return e.WithDataInto(new(Event), data)
}

// WithDataInto is WithData writing the copy into dst instead of a new
// allocation, and returning it: dst must be a zero Event nobody else refers
// to, such as one from an EventBlock.
func (e *Event) WithDataInto(dst *Event, data []byte) *Event {
	dst.ID, dst.Source, dst.Type, dst.Subject = e.ID, e.Source, e.Type, e.Subject
	dst.DataContentType, dst.Time, dst.Metadata = e.DataContentType, e.Time, e.Metadata
	dst.Data = data
	return dst
}

// EventBlock hands out new zero events from blocks of several, one
// allocation per block instead of one per event, for a processor that
// makes an event per input (the map). Events are never handed out twice
// or reused: a block stays alive as long as any of its events does (4 KiB
// kept by one event that a tap or a dead letter holds on to), so using
// them is as safe as new(Event). The zero EventBlock is ready; it is safe
// for concurrent use.
type EventBlock struct {
	mu   sync.Mutex
	free []Event
}

// eventBlockSize events of 160 bytes fill the 4 KiB size class.
const eventBlockSize = 25

// New returns a zero event nobody else refers to.
func (b *EventBlock) New() *Event {
	b.mu.Lock()
	if len(b.free) == 0 {
		b.free = make([]Event, eventBlockSize)
	}
	e := &b.free[0]
	b.free = b.free[1:]
	b.mu.Unlock()
	return e
}

// WithType returns a copy of e with type t, keeping the parsed view if one
// exists (the payload is the same bytes, so the view is still true).
func (e *Event) WithType(t string) *Event {
	c := e.WithData(e.Data)
	c.Type = t
	c.view.members.Store(e.view.members.Load())
	c.view.strict.Store(e.view.strict.Load())
	c.view.parsed.Store(e.view.parsed.Load())
	return c
}

// WithMetadata returns a copy of e with metadata m (which the copy now
// owns), keeping the parsed view if one exists.
func (e *Event) WithMetadata(m map[string]string) *Event {
	c := e.WithType(e.Type)
	c.Metadata = m
	return c
}

// batchFree is a small free list of batch slices shared by sources and the
// engine: a source takes one with NewBatch, the engine owns it after Emit
// and returns it with RecycleBatch once every component is done with it.
// A mutex-guarded stack rather than a sync.Pool, because putting a slice
// into a sync.Pool allocates its header.
var batchFree struct {
	mu    sync.Mutex
	slots [][]*Event
}

// maxFreeBatches bounds the free list (256 pointers each: 2 KiB).
const maxFreeBatches = 1024

// NewBatch returns an empty event slice with room for MaxBatch events,
// reused from batches the engine finished with when possible. Sources use
// it for the slices they hand to Emit.
func NewBatch() []*Event {
	batchFree.mu.Lock()
	if n := len(batchFree.slots); n > 0 {
		b := batchFree.slots[n-1]
		batchFree.slots[n-1] = nil
		batchFree.slots = batchFree.slots[:n-1]
		batchFree.mu.Unlock()
		return b
	}
	batchFree.mu.Unlock()
	return make([]*Event, 0, MaxBatch)
}

// RecycleBatch gives a slice back for NewBatch to reuse. The caller must
// own it (no one else reads it any more). Slices of another capacity are
// left to the garbage collector.
func RecycleBatch(b []*Event) {
	if cap(b) != MaxBatch {
		return
	}
	clear(b[:cap(b)])
	batchFree.mu.Lock()
	if len(batchFree.slots) < maxFreeBatches {
		batchFree.slots = append(batchFree.slots, b[:0])
	}
	batchFree.mu.Unlock()
}
