package components

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowctl/flowctl/internal/flow"
)

// This file holds what the I/O components (file, stdin and http sources;
// stdout, file, http, sqlite and drop sinks) share: config accessors, line
// reading, event encoding and Retry-After parsing. Unexported names carry an "io"
// prefix so they never clash with the processors' helpers in this package.

// ioMaxBatch is the largest batch a source may emit (flow.Emitter).
const ioMaxBatch = flow.MaxBatch

// ---------------------------------------------------------------------------
// Config accessors. The spec package applies defaults before New runs, but
// constructors are also called directly (tests, other packages), so each
// accessor takes the default too and tolerates a missing key.

func ioCfgString(cfg flow.Config, key, def string) string {
	if s, ok := cfg[key].(string); ok && s != "" {
		return s
	}
	return def
}

func ioCfgBool(cfg flow.Config, key string, def bool) bool {
	if b, ok := cfg[key].(bool); ok {
		return b
	}
	return def
}

// ioCfgDuration reads a duration written as a Go duration string ("250ms",
// "10s") or, for convenience, a bare number of seconds.
func ioCfgDuration(cfg flow.Config, key string, def time.Duration) (time.Duration, error) {
	switch v := cfg[key].(type) {
	case nil:
		return def, nil
	case time.Duration:
		return v, nil
	case string:
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, &flow.FieldError{Path: key, Message: fmt.Sprintf("%q is not a duration", v), Hint: `write it like "250ms", "10s" or "1m"`}
		}
		return d, nil
	case int:
		return time.Duration(v) * time.Second, nil
	case float64:
		return time.Duration(v * float64(time.Second)), nil
	default:
		return 0, &flow.FieldError{Path: key, Message: fmt.Sprintf("must be a duration, not %T", v), Hint: `write it like "250ms" or "10s"`}
	}
}

func ioCfgStrings(cfg flow.Config, key string) ([]string, error) {
	switch v := cfg[key].(type) {
	case nil:
		return nil, nil
	case []string:
		return v, nil
	case []any:
		out := make([]string, 0, len(v))
		for i, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, &flow.FieldError{Path: fmt.Sprintf("%s[%d]", key, i), Message: fmt.Sprintf("must be a string, not %T", x)}
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, &flow.FieldError{Path: key, Message: fmt.Sprintf("must be a list of strings, not %T", v)}
	}
}

func ioCfgStringMap(cfg flow.Config, key string) (map[string]string, error) {
	switch v := cfg[key].(type) {
	case nil:
		return nil, nil
	case map[string]string:
		return v, nil
	case map[string]any:
		out := make(map[string]string, len(v))
		for k, x := range v {
			switch t := x.(type) {
			case string:
				out[k] = t
			case int, int64, float64, bool:
				out[k] = fmt.Sprint(t)
			default:
				return nil, &flow.FieldError{Path: key + "." + k, Message: fmt.Sprintf("must be a string, not %T", x)}
			}
		}
		return out, nil
	default:
		return nil, &flow.FieldError{Path: key, Message: fmt.Sprintf("must be a map of strings, not %T", v)}
	}
}

// ioResolvePath makes a relative config path relative to the pipeline
// file's directory, so a pipeline runs the same from any working directory.
func ioResolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

// ioFieldErr builds a *flow.FieldError.
func ioFieldErr(path, msg, hint string) error {
	return &flow.FieldError{Path: path, Message: msg, Hint: hint}
}

// ---------------------------------------------------------------------------
// Line reading.

const (
	ioReadBufSize = 256 << 10 // 256 KiB: few syscalls, most lines fit, and W1 stays under 32 MiB RSS
	ioMaxLineSize = 64 << 20  // a longer line is skipped, not buffered
)

// errIOLineTooLong is returned by ioLineReader.next for a line over the
// reader's limit. The line is skipped; the next call goes on after it.
var errIOLineTooLong = errors.New("line too long")

// ioLineReader splits a stream into lines, batch by batch. It keeps its own
// buffer rather than wrapping a bufio.Reader because a follow-mode source
// must be able to stop at EOF in the middle of a line and resume when the
// writer completes it; bufio would hand the partial line out.
//
// next copies every line of a batch into one new backing array, so a batch
// costs one allocation for its bytes however many lines it has, and the
// slices it returns stay valid (and unaliased) after the reader moves on.
type ioLineReader struct {
	r     io.Reader
	buf   []byte
	start int // first unread byte in buf
	end   int // end of valid data in buf
	// line is the number of the last line handed out (1-based).
	line int64
	// pos counts the bytes consumed from r, for truncation checks.
	pos int64
	// maxLine bounds a line's length; a longer one is skipped.
	maxLine int
	// size is the buffer's normal size; it goes back to it after a long
	// line made it grow.
	size int
	// skipping: dropping the rest of an overlong line up to its newline.
	skipping bool

	// scratch returned by next, reused across calls.
	lines      [][]byte
	nums       []int64
	offs, lens []int
}

// newIOLineReader returns a reader with a buffer of size bytes (it grows
// for longer lines, up to ioMaxLineSize).
func newIOLineReader(r io.Reader, size int) *ioLineReader {
	return &ioLineReader{r: r, buf: make([]byte, size), maxLine: ioMaxLineSize, size: size}
}

// reset points the reader at a new stream (a truncated or rotated file),
// dropping buffered data and restarting line numbers.
func (lr *ioLineReader) reset(r io.Reader) {
	lr.r, lr.start, lr.end, lr.line, lr.pos, lr.skipping = r, 0, 0, 0, 0, false
}

// next returns up to limit complete lines (without "\n" or "\r\n") and their
// line numbers. It reads from the underlying reader only when no complete
// line is buffered, so it never waits to fill a batch. Empty lines are
// counted but skipped when skipEmpty is set. At the end of the stream it
// returns io.EOF with no lines; a final line without a newline stays
// buffered (see rest). A line longer than maxLine is skipped: next returns
// an error wrapping errIOLineTooLong naming it, and the following call goes
// on with the next line, so one bad line never stops a source. The
// returned slices of slices are reused by the next call; the line bytes
// are not.
func (lr *ioLineReader) next(limit int, skipEmpty bool) ([][]byte, []int64, error) {
	for zeroReads := 0; ; {
		if lr.scan(limit, skipEmpty) > 0 {
			return lr.lines, lr.nums, nil
		}
		// No complete line buffered: make room and read.
		if lr.start > 0 {
			lr.end = copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.start = 0
		}
		if len(lr.buf) > lr.size && lr.end <= lr.size/2 {
			// A long line made the buffer grow; do not keep it.
			nb := make([]byte, lr.size)
			lr.end = copy(nb, lr.buf[:lr.end])
			lr.buf = nb
		}
		if lr.end == len(lr.buf) {
			if len(lr.buf) >= lr.maxLine {
				lr.skipping = true
				lr.start, lr.end = 0, 0
				lr.line++
				return nil, nil, fmt.Errorf("line %d skipped: %w (over %d bytes)", lr.line, errIOLineTooLong, lr.maxLine)
			}
			nb := make([]byte, min(2*len(lr.buf), max(lr.maxLine, len(lr.buf))))
			copy(nb, lr.buf[:lr.end])
			lr.buf = nb
		}
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		lr.pos += int64(n)
		if n > 0 {
			zeroReads = 0
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		// io.Reader allows (0, nil); give up after a few to avoid spinning.
		if zeroReads++; zeroReads > 100 {
			return nil, nil, io.ErrNoProgress
		}
	}
}

// scan finds up to limit lines in buf[start:end], copies the region holding
// them into one new array (one allocation and one copy per batch) and fills
// lr.lines and lr.nums with slices of it. It returns how many lines it
// kept; when it returns 0 it has consumed at most skipped empty lines.
func (lr *ioLineReader) scan(limit int, skipEmpty bool) int {
	lr.lines, lr.nums = lr.lines[:0], lr.nums[:0]
	lr.offs, lr.lens = lr.offs[:0], lr.lens[:0]
	if lr.skipping {
		i := bytes.IndexByte(lr.buf[lr.start:lr.end], '\n')
		if i < 0 {
			lr.start, lr.end = 0, 0
			return 0
		}
		lr.start += i + 1
		lr.skipping = false
	}
	data := lr.buf[lr.start:lr.end]
	off := 0
	for len(lr.offs) < limit {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			break
		}
		l := i
		if l > 0 && data[off+l-1] == '\r' {
			l--
		}
		lr.line++
		if l > 0 || !skipEmpty {
			lr.offs = append(lr.offs, off)
			lr.lens = append(lr.lens, l)
			lr.nums = append(lr.nums, lr.line)
		}
		off += i + 1
	}
	lr.start += off
	if len(lr.offs) == 0 {
		return 0
	}
	region := bytes.Clone(data[:off])
	for i, o := range lr.offs {
		end := o + lr.lens[i]
		lr.lines = append(lr.lines, region[o:end:end])
	}
	return len(lr.lines)
}

// consumed is the offset in the stream just past the last line handed out.
func (lr *ioLineReader) consumed() int64 { return lr.pos - int64(lr.end-lr.start) }

// seek makes the reader go on at offset of r, after line number line.
func (lr *ioLineReader) seek(r io.Reader, offset, line int64) {
	lr.reset(r)
	lr.pos, lr.line = offset, line
}

// rest returns the buffered bytes after the last newline (a final line the
// writer did not terminate) as a new slice, or nil, and consumes them.
func (lr *ioLineReader) rest() ([]byte, int64) {
	if lr.start >= lr.end || lr.skipping {
		return nil, 0
	}
	b := bytes.TrimSuffix(lr.buf[lr.start:lr.end], []byte{'\r'})
	out := append([]byte(nil), b...)
	lr.start = lr.end
	lr.line++
	return out, lr.line
}

// ---------------------------------------------------------------------------
// Line sources (file, stdin).

// ioLineSource is what the file and stdin sources share: config and the
// loop that turns lines into emitted batches.
type ioLineSource struct {
	name      string
	batchSize int
	// skipEmpty: in json format a blank line is not an event.
	skipEmpty bool
	// strict: in json format a line that is not strict JSON (see
	// flow.ValidateJSON) is rejected, not emitted.
	strict bool
	ev     ioLineEvents
	log    *slog.Logger
}

// ioLineSourceFields are the config fields the file and stdin sources
// share.
var ioLineSourceFields = []flow.Field{
	{Name: "format", Type: flow.TypeString, Default: "json", Enum: []string{"json", "lines"},
		Description: "json: JSON lines, each line's bytes are the event data (application/json; see the json field for malformed lines); lines: each raw line is the data (text/plain). Blank lines are skipped in json format."},
	{Name: "json", Type: flow.TypeString, Default: "strict", Enum: []string{"strict", "lenient"},
		Description: "In json format, what a malformed line is. strict: a line that is not valid JSON, or whose value would change when read — invalid UTF-8 or a lone \\u surrogate in a string (read as U+FFFD), a number beyond float64 (1e999, read as +Inf), an integer that fits neither int64 nor exactly float64 — is not emitted: it goes to the dead-letter sink with the reason, or without one is dropped and counted. lenient: every line is emitted as it is and fails, if at all, where it is parsed."},
	{Name: "event_type", Type: flow.TypeString, Description: "The type of the emitted events; defaults to the component's name."},
	{Name: "batch_size", Type: flow.TypeInt, Default: 256, Description: "Most lines per emitted batch (1–256). A batch holds what is ready now; the source never waits to fill one."},
}

func ioParseLineSource(name string, cfg flow.Config) (ioLineSource, error) {
	var errs []error
	s := ioLineSource{name: name, log: slog.New(slog.DiscardHandler)}
	switch f := ioCfgString(cfg, "format", "json"); f {
	case "json":
		s.skipEmpty = true
		s.ev.contentType = "application/json"
		switch m := ioCfgString(cfg, "json", "strict"); m {
		case "strict":
			s.strict = true
		case "lenient":
		default:
			errs = append(errs, ioFieldErr("json", fmt.Sprintf("unknown mode %q", m), `use "strict" (malformed lines go to the dead letter) or "lenient" (every line is emitted)`))
		}
	case "lines":
		s.ev.contentType = "text/plain"
	default:
		errs = append(errs, ioFieldErr("format", fmt.Sprintf("unknown format %q", f), `use "json" (JSON lines) or "lines" (raw text lines)`))
	}
	bs, err := cfgInt(cfg, "batch_size", ioMaxBatch)
	switch {
	case err != nil:
		errs = append(errs, err)
	case bs < 1 || bs > ioMaxBatch:
		errs = append(errs, ioFieldErr("batch_size", fmt.Sprintf("%d is out of range", bs), "use a value from 1 to 256"))
	}
	s.batchSize = bs
	s.ev.source = name
	s.ev.eventType = ioCfgString(cfg, "event_type", name)
	return s, errors.Join(errs...)
}

// pump reads lines from lr and emits them batch by batch until lr reports
// the end of its stream (returned as io.EOF) or Emit fails (its error is
// returned). With final set, an unterminated last line is emitted too; a
// follow-mode source leaves it buffered for the writer to complete. With a
// cursor, every batch carries the position after its last line, so a
// checkpointing run can resume there.
func (s *ioLineSource) pump(ctx context.Context, out flow.Emitter, lr *ioLineReader, idPrefix string, final bool, cur *ioCursor) error {
	pe, _ := out.(flow.PositionEmitter)
	if cur == nil {
		pe = nil
	}
	emit := func(evs []*flow.Event) error {
		evs, err := s.rejectMalformed(ctx, out, evs)
		if err != nil {
			return err
		}
		if pe != nil {
			// Also with no good event left: the position moves past the
			// rejected lines once they were dead-lettered.
			return pe.EmitAt(ctx, evs, cur.position(lr))
		}
		if len(evs) == 0 {
			flow.RecycleBatch(evs)
			return nil
		}
		return out.Emit(ctx, evs, nil)
	}
	for {
		lines, nums, err := lr.next(s.batchSize, s.skipEmpty)
		if errors.Is(err, errIOLineTooLong) {
			s.log.Warn("skipping an overlong line", "source", idPrefix, "error", err)
			continue
		}
		if len(lines) > 0 {
			if err := emit(s.ev.build(idPrefix, lines, nums)); err != nil {
				return err
			}
			continue
		}
		if err == io.EOF && final {
			if last, num := lr.rest(); len(last) > 0 {
				if err := emit(s.ev.build(idPrefix, [][]byte{last}, []int64{num})); err != nil {
					return err
				}
			}
		}
		return err
	}
}

// ioCursor names the file a line reader reads, for checkpoints: its
// absolute path (the position's key) and its identity, so that a resumed
// run knows whether the path still names the same file.
type ioCursor struct {
	key string
	id  ioFileID
}

// ioFilePos is a file source's checkpointed place in one file: the byte
// offset after the last acknowledged line and that line's number (ids go
// on from it).
type ioFilePos struct {
	Dev    uint64 `json:"dev,omitempty"`
	Ino    uint64 `json:"ino,omitempty"`
	Offset int64  `json:"offset"`
	Line   int64  `json:"line"`
	// Mark is the CRC-32 of the MarkLen bytes before Offset (the end of
	// the last acknowledged line): a file truncated and written again
	// past Offset keeps its inode and length, but not those bytes.
	// Checkpoints of earlier versions have none.
	Mark    uint32 `json:"mark,omitempty"`
	MarkLen int    `json:"mark_len,omitempty"`
}

// ioMarkLen is how many bytes before a file position its mark covers.
const ioMarkLen = 64

// position is where lr is now: past every line it handed out.
func (c *ioCursor) position(lr *ioLineReader) flow.Position {
	p := ioFilePos{Dev: c.id.dev, Ino: c.id.ino, Offset: lr.consumed(), Line: lr.line}
	// The bytes just consumed are still in the buffer, before start.
	if n := min(ioMarkLen, lr.start, int(p.Offset)); n > 0 {
		p.Mark, p.MarkLen = crc32.ChecksumIEEE(lr.buf[lr.start-n:lr.start]), n
	}
	v, _ := json.Marshal(p)
	return flow.Position{Key: c.key, Value: v}
}

// ioMarkMatches reports whether the bytes of f before p.Offset are still
// the ones p's mark was taken of (true for a position without a mark).
func ioMarkMatches(f io.ReaderAt, p ioFilePos) bool {
	if p.MarkLen <= 0 || int64(p.MarkLen) > p.Offset {
		return true
	}
	b := make([]byte, p.MarkLen)
	if _, err := f.ReadAt(b, p.Offset-int64(p.MarkLen)); err != nil {
		return false
	}
	return crc32.ChecksumIEEE(b) == p.Mark
}

// rejectMalformed hands, in strict json mode, the malformed events of evs
// to the emitter's Rejecter (to the dead letter, with the reason) and
// returns the others. Without a flow.Rejecter to take them they stay in
// evs: never lost.
func (s *ioLineSource) rejectMalformed(ctx context.Context, out flow.Emitter, evs []*flow.Event) ([]*flow.Event, error) {
	if !s.strict {
		return evs, nil
	}
	rej, ok := out.(flow.Rejecter)
	if !ok {
		return evs, nil
	}
	// One pass over the batch, its member indices allocated together.
	flow.CheckStrictJSON(evs)
	var bad []*flow.Event
	var errs []error
	k := 0
	for _, e := range evs {
		// StrictJSON remembers the verdict on the event, so expressions
		// later in the pipeline read the raw bytes without checking again.
		if !e.StrictJSON() {
			bad = append(bad, e)
			errs = append(errs, flow.ValidateJSON(e.Data))
			continue
		}
		evs[k] = e
		k++
	}
	if len(bad) == 0 {
		return evs, nil
	}
	clear(evs[k:])
	if err := rej.Reject(ctx, bad, errs, nil); err != nil {
		return nil, err
	}
	return evs[:k], nil
}

// ioLineEvents builds a batch of events from lines: the events share one
// allocated []flow.Event and their IDs share one string, and the batch
// slice comes from flow.NewBatch, so a batch of n lines costs a constant
// number of allocations. IDs are idPrefix + line
// number.
type ioLineEvents struct {
	source      string // event source = component name
	eventType   string
	contentType string
	idbuf       []byte // scratch, reused
	ends        []int  // scratch, reused
	digits      []byte // scratch: the last line number in decimal
}

// ioIncDecimal adds one to a non-negative decimal number in place.
func ioIncDecimal(d []byte) []byte {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] != '9' {
			d[i]++
			return d
		}
		d[i] = '0'
	}
	return append([]byte{'1'}, d...)
}

func (b *ioLineEvents) build(idPrefix string, lines [][]byte, nums []int64) []*flow.Event {
	n := len(lines)
	evs := make([]flow.Event, n)
	// The engine recycles batch slices; taking one from its free list
	// saves an allocation per batch.
	ptrs := flow.NewBatch()[:n]
	b.idbuf, b.ends = b.idbuf[:0], b.ends[:0]
	for i, num := range nums {
		b.idbuf = append(b.idbuf, idPrefix...)
		if i > 0 && num == nums[i-1]+1 {
			// Consecutive lines (the usual case): copy the previous
			// number and add one in decimal, cheaper than formatting.
			b.digits = ioIncDecimal(b.digits)
		} else {
			b.digits = strconv.AppendInt(b.digits[:0], num, 10)
		}
		b.idbuf = append(b.idbuf, b.digits...)
		b.ends = append(b.ends, len(b.idbuf))
	}
	ids := string(b.idbuf)
	start := 0
	for i := range evs {
		e := &evs[i]
		e.ID = ids[start:b.ends[i]]
		start = b.ends[i]
		e.Source = b.source
		e.Type = b.eventType
		e.DataContentType = b.contentType
		e.Data = lines[i]
		ptrs[i] = e
	}
	return ptrs
}

// ---------------------------------------------------------------------------
// Event encoding for the sinks.

// ioFormat is how a sink writes an event.
type ioFormat int

const (
	ioFormatData     ioFormat = iota // the data bytes as they are
	ioFormatEnvelope                 // the whole CloudEvent as JSON
)

func ioParseFormat(cfg flow.Config) (ioFormat, error) {
	switch f := ioCfgString(cfg, "format", "data"); f {
	case "data":
		return ioFormatData, nil
	case "envelope":
		return ioFormatEnvelope, nil
	default:
		return 0, ioFieldErr("format", fmt.Sprintf("unknown format %q", f), `use "data" (the event's data) or "envelope" (the whole CloudEvent)`)
	}
}

// ioFormatField is the format field shared by the sinks.
var ioFormatField = flow.Field{
	Name: "format", Type: flow.TypeString, Default: "data", Enum: []string{"data", "envelope"},
	Description: "data writes each event's data as it arrived; envelope writes the whole CloudEvent as JSON (data inline when it is JSON, else a string).",
}

// ioAppendLine appends e as one line of JSON lines output (no newline).
// Data that is itself one line is written as its original bytes; JSON
// spread over several lines is compacted so the output stays one event per
// line.
func ioAppendLine(dst []byte, e *flow.Event, f ioFormat) []byte {
	if f == ioFormatEnvelope {
		return ioAppendEnvelope(dst, e)
	}
	if bytes.IndexByte(e.Data, '\n') < 0 {
		return append(dst, e.Data...)
	}
	var b bytes.Buffer
	if json.Compact(&b, e.Data) == nil {
		return append(dst, b.Bytes()...)
	}
	return append(dst, e.Data...)
}

// ioAppendJSONValue appends e's data as one JSON value: inline when it is
// valid JSON, else as a JSON string (for text payloads such as raw lines).
func ioAppendJSONValue(dst []byte, e *flow.Event) []byte {
	if ioIsJSONContent(e.DataContentType) && json.Valid(e.Data) {
		if bytes.IndexByte(e.Data, '\n') < 0 {
			return append(dst, e.Data...)
		}
		var b bytes.Buffer
		_ = json.Compact(&b, e.Data)
		return append(dst, b.Bytes()...)
	}
	return flow.AppendJSONBytes(dst, e.Data)
}

// ioIsJSONContent reports whether a datacontenttype says JSON; empty means
// JSON, flowctl's default.
func ioIsJSONContent(ct string) bool {
	if ct == "" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(strings.ToLower(ct))
	return ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// ioCoreAttrs are the CloudEvents attribute names an extension (metadata
// key) may not take.
var ioCoreAttrs = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "time": true,
	"subject": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// ioAppendEnvelope appends e as a CloudEvents 1.0 JSON object. Metadata
// become extension attributes, in sorted order so output is reproducible;
// a metadata key that would shadow a core attribute is left out. Data is
// inline JSON when it is JSON, a string when it is UTF-8 text, and
// data_base64 otherwise.
func ioAppendEnvelope(dst []byte, e *flow.Event) []byte {
	dst = append(dst, `{"specversion":"1.0","id":`...)
	dst = flow.AppendJSONString(dst, (e.ID))
	dst = append(dst, `,"source":`...)
	dst = flow.AppendJSONString(dst, (e.Source))
	dst = append(dst, `,"type":`...)
	dst = flow.AppendJSONString(dst, (e.Type))
	if !e.Time.IsZero() {
		dst = append(dst, `,"time":"`...)
		dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = flow.AppendJSONString(dst, (e.Subject))
	}
	ct := e.DataContentType
	if ct == "" {
		ct = "application/json"
	}
	dst = append(dst, `,"datacontenttype":`...)
	dst = flow.AppendJSONString(dst, (ct))
	if len(e.Metadata) > 0 {
		keys := make([]string, 0, len(e.Metadata))
		for k := range e.Metadata {
			if !ioCoreAttrs[k] {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = append(dst, ',')
			dst = flow.AppendJSONString(dst, (k))
			dst = append(dst, ':')
			dst = flow.AppendJSONString(dst, (e.Metadata[k]))
		}
	}
	switch {
	case e.Data == nil:
	case ioIsJSONContent(e.DataContentType) && json.Valid(e.Data):
		dst = append(dst, `,"data":`...)
		dst = ioAppendJSONValue(dst, e)
	case utf8.Valid(e.Data):
		dst = append(dst, `,"data":`...)
		dst = flow.AppendJSONBytes(dst, e.Data)
	default:
		dst = append(dst, `,"data_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, e.Data)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// ---------------------------------------------------------------------------
// Retry-After.

// ioParseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. ok is false when the header is absent or unreadable.
func ioParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			secs = 0
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		return max(t.Sub(now), 0), true
	}
	// http.ParseTime also accepts the obsolete RFC 850 and asctime forms.
	for _, layout := range []string{time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}

// ioHasNewline reports whether data spans lines, and so must be reshaped
// before it can be one line of JSON lines output.
func ioHasNewline(data []byte) bool { return bytes.IndexByte(data, '\n') >= 0 }
