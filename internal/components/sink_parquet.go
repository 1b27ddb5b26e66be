package components

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSink,
		Name:     "parquet",
		Summary:  "Writes events as rows of Parquet files in a directory, one column per data field (declared or inferred from the first batch) plus event attributes; files are rolled by rows, size or age.",
		Delivery: "Exactly once across a crash (even SIGKILL) when its events come, in order, from sources that can be replayed (file, generate). Rows of the file being written are also appended to a journal next to it that every checkpoint fsyncs; a resumed run rebuilds the unfinished file from the journal up to the checkpoint and drops the rest, which the source sends again. Finished files are never removed: replayed events that a finished file already holds are skipped. Fed by several sources, by an unordered parallel processor or by a source that cannot be replayed: at-least-once.",
		Fields: []flow.Field{
			{Name: "path", Type: flow.TypeString, Required: true, Example: "out/events",
				Description: "The directory to write the files to; relative paths are resolved against the pipeline file's directory. It is created if missing."},
			{Name: "file_prefix", Type: flow.TypeString, Default: "part",
				Description: "Files are named PREFIX-NNNNNN.parquet, numbered on from the highest number already in the directory. The file being written is .PREFIX-NNNNNN.parquet.tmp with its journal .PREFIX-NNNNNN.journal."},
			tableSchemaFields[0], tableSchemaFields[1], tableSchemaFields[2],
			{Name: "row_group_rows", Type: flow.TypeInt, Default: 10000, Description: "Rows per row group."},
			tableRollFields[0], tableRollFields[1], tableRollFields[2],
			{Name: "compression", Type: flow.TypeString, Default: "snappy", Enum: []string{"snappy", "zstd", "gzip", "none"}, Description: "The column compression codec."},
		},
		Examples: []string{
			"path: out/events",
			"path: out/payments\nschema:\n  - {name: user, type: string, optional: false}\n  - {name: amount, type: double}\n  - {name: at, type: timestamp}\nmax_rows: 100000\nmax_age: 5m",
		},
		Validate: func(cfg flow.Config) error {
			_, err := parseTableSink(cfg, "parquet")
			return err
		},
		New: func(bc flow.BuildContext) (any, error) { return newTableSink(bc, "parquet") },
	})
}

// tableSchemaFields are the fields of the parquet and arrow sinks that
// declare their columns.
var tableSchemaFields = []flow.Field{
	{Name: "schema", Type: flow.TypeArray,
		Description: "The data columns. Without it they are inferred from the first batch (or taken from the files already in the directory): every top-level field becomes an optional column; a JSON string is string, an integer that fits int64 is int64, another number double (int64 and double mixed: double), true/false bool, an object or array json; a field that is only null, or has values of different kinds, is json.",
		Items: &flow.Field{Type: flow.TypeObject, Fields: []flow.Field{
			{Name: "name", Type: flow.TypeString, Required: true, Description: "The top-level data field and column name.", Example: "amount"},
			{Name: "type", Type: flow.TypeString, Required: true, Enum: []string{"string", "int64", "double", "bool", "timestamp", "json"},
				Description: "The column type. timestamp reads RFC 3339 strings and stores nanoseconds (UTC); json stores any value as JSON text."},
			{Name: "optional", Type: flow.TypeBool, Default: true, Description: "Whether the field may be missing or null (stored as null). An event missing a required field goes to the dead-letter sink."},
		}},
		Example: []any{map[string]any{"name": "user", "type": "string"}, map[string]any{"name": "amount", "type": "double"}}},
	{Name: "attributes", Type: flow.TypeStrings, Default: []any{"id", "type", "time"},
		Description: "Event attributes stored as columns named with a leading underscore: id (_id), type (_type), source (_source), subject (_subject), time (_time, a timestamp). An empty list stores none."},
	{Name: "unknown_fields", Type: flow.TypeString, Default: "dead_letter", Enum: []string{"dead_letter", "drop"},
		Description: "What to do with an event that has a top-level field the schema has no column for: dead_letter sends it to the dead-letter sink with the reason; drop writes the event without that field."},
}

// tableRollFields are the fields of the parquet and arrow sinks that say
// when a file is finished.
var tableRollFields = []flow.Field{
	{Name: "max_rows", Type: flow.TypeInt, Default: 1000000, Description: "A file is finished when it holds this many rows."},
	{Name: "max_bytes", Type: flow.TypeInt, Default: 128 << 20, Description: "A file is finished when the rows written to it add up to this many bytes, uncompressed (the size of their journal lines); the file itself is smaller."},
	{Name: "max_age", Type: flow.TypeDuration, Default: "1m", Description: "A file is finished this long after its first row was written, even when rows stop coming."},
}

// newTableSink builds the parquet or arrow sink (typ) of bc.
func newTableSink(bc flow.BuildContext, typ string) (*tableSink, error) {
	s, err := parseTableSink(bc.Config, typ)
	if err != nil {
		return nil, err
	}
	s.name = bc.Name
	s.dir = ioResolvePath(bc.Dir, s.dir)
	if abs, err := filepath.Abs(s.dir); err == nil {
		s.dir = abs
	}
	s.log = bc.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// tableSink writes rows to one file at a time in a directory: Parquet
// files (the parquet sink) or Arrow IPC files (the arrow sink). The two
// differ only in how a file's rows become bytes (tableWriter) and how a
// finished file is read back (finishedRows); naming, rolling, the journal
// and recovery are the same code.
//
// Data safety: a Parquet or Arrow IPC file is readable only once its
// footer is written (an IPC stream: its end-of-stream marker), so the rows of the file being written (a dot-file ending in
// .tmp) are also appended, as JSON lines, to a journal beside it. The
// engine calls Sync before it commits a checkpoint; Sync fsyncs the
// journal, so every committed row is on disk in a finished file or in a
// journal. Finishing a file closes it (footer), fsyncs it, renames it into
// place, fsyncs the directory and only then removes its journal.
//
// Position is the number of rows in the output (finished files, then the
// file being written). A resumed run counts the rows of the finished
// files (R), rebuilds the unfinished file from the journal's rows below
// the committed position P and drops the journal's rows from P on (the
// source sends those events again); when R > P (a file was finished after
// the checkpoint) the first R-P events sent again are skipped, as the
// finished files already hold them.
type tableSink struct {
	typ         string // parquet | arrow
	ext         string // file name extension: parquet, arrow (IPC file) or arrows (IPC stream)
	name        string
	dir         string // absolute
	prefix      string
	declared    []pqColumn // nil: inferred
	attrs       []string
	dropUnknown bool
	rgRows      int
	maxRows     int
	maxBytes    int64
	maxAge      time.Duration
	codec       string // parquet: snappy|zstd|gzip|none; arrow: lz4|zstd|none
	log         *slog.Logger

	resume   int64 // committed position, or -1
	keepTail bool

	mu       sync.Mutex
	cols     []pqColumn // the schema once known, sorted by name
	byName   map[string]int
	schema   *parquet.Schema
	seq      int // number of the file being written (or next)
	cur      *pqFile
	skip     int64 // replayed events the finished files hold
	pos      atomic.Int64
	replayed atomic.Int64
	stop     chan struct{}
	done     chan struct{}
	closed   bool

	row   parquet.Row // scratch
	jline []byte      // scratch
}

// pqFile is the file being written and its journal.
type pqFile struct {
	seq     int
	tmp     string
	f       *os.File
	bw      *bufio.Writer
	w       tableWriter
	journal *os.File
	jw      *bufio.Writer
	rows    int
	inGroup int
	bytes   int64
	opened  time.Time
	// restoring: the rows written are the journal's own (a resumed run
	// rebuilding the file), not appended to it again.
	restoring bool
}

// parseTableSink reads the config of the parquet or arrow sink (typ).
func parseTableSink(cfg flow.Config, typ string) (*tableSink, error) {
	var errs []error
	s := &tableSink{
		typ:    typ,
		ext:    "parquet",
		dir:    ioCfgString(cfg, "path", ""),
		prefix: ioCfgString(cfg, "file_prefix", "part"),
		codec:  ioCfgString(cfg, "compression", "snappy"),
		resume: -1,
	}
	groupKey := "row_group_rows"
	if typ == "arrow" {
		s.ext, groupKey = "arrow", "batch_rows"
		s.codec = ioCfgString(cfg, "compression", "none")
		switch f := ioCfgString(cfg, "arrow_format", "file"); f {
		case "file":
		case "stream":
			s.ext = "arrows"
		default:
			errs = append(errs, ioFieldErr("arrow_format", fmt.Sprintf("unknown format %q", f), "use file (.arrow, with a footer for random access) or stream (.arrows)"))
		}
		switch s.codec {
		case "lz4", "zstd", "none":
		default:
			errs = append(errs, ioFieldErr("compression", fmt.Sprintf("unknown codec %q", s.codec), "Arrow IPC knows lz4 and zstd; use lz4, zstd or none"))
		}
	} else {
		switch s.codec {
		case "snappy", "zstd", "gzip", "none":
		default:
			errs = append(errs, ioFieldErr("compression", fmt.Sprintf("unknown codec %q", s.codec), "use snappy, zstd, gzip or none"))
		}
	}
	if s.dir == "" {
		errs = append(errs, ioFieldErr("path", "is required", "name the directory to write the files to, e.g. path: out/events"))
	}
	if strings.ContainsAny(s.prefix, `/\`) || strings.HasPrefix(s.prefix, ".") {
		errs = append(errs, ioFieldErr("file_prefix", fmt.Sprintf("%q is not a plain file name prefix", s.prefix), "use letters, digits, - and _, e.g. part"))
	}
	switch u := ioCfgString(cfg, "unknown_fields", "dead_letter"); u {
	case "dead_letter", "drop":
		s.dropUnknown = u == "drop"
	default:
		errs = append(errs, ioFieldErr("unknown_fields", fmt.Sprintf("unknown value %q", u), "use dead_letter or drop"))
	}
	ints := []struct {
		key string
		def int
		dst *int
	}{{groupKey, 10000, &s.rgRows}, {"max_rows", 1000000, &s.maxRows}}
	for _, f := range ints {
		v, err := cfgInt(cfg, f.key, f.def)
		if err == nil && v < 1 {
			err = ioFieldErr(f.key, fmt.Sprintf("%d is out of range", v), "use a positive number")
		}
		if err != nil {
			errs = append(errs, err)
		}
		*f.dst = v
	}
	mb, err := cfgInt(cfg, "max_bytes", 128<<20)
	if err == nil && mb < 1 {
		err = ioFieldErr("max_bytes", fmt.Sprintf("%d is out of range", mb), "use a positive number of bytes, e.g. 134217728")
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.maxBytes = int64(mb)
	s.maxAge, err = ioCfgDuration(cfg, "max_age", time.Minute)
	if err == nil && s.maxAge <= 0 {
		err = ioFieldErr("max_age", "must be positive", `write it like "30s" or "5m"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	if _, set := cfg["attributes"]; set {
		attrs, err := ioCfgStrings(cfg, "attributes")
		if err != nil {
			errs = append(errs, err)
		}
		s.attrs = attrs
	} else {
		s.attrs = []string{"id", "type", "time"}
	}
	for i, a := range s.attrs {
		if _, ok := pqAttrTypes[a]; !ok {
			errs = append(errs, ioFieldErr(fmt.Sprintf("attributes[%d]", i), fmt.Sprintf("unknown attribute %q", a), "use id, type, source, subject or time"))
		}
	}
	if raw, set := cfg["schema"]; set && raw != nil {
		cols, err := pqParseSchema(raw)
		if err != nil {
			errs = append(errs, err)
		}
		s.declared = cols
		if s.declared == nil {
			s.declared = []pqColumn{}
		}
	}
	return s, errors.Join(errs...)
}

// ---------------------------------------------------------------------------
// Lifecycle.

// OutputKey implements flow.CheckpointSink. The Parquet key is the one
// earlier versions committed; the Arrow keys name the extension, so that
// switching a directory's format does not resume from the other format's
// position.
func (s *tableSink) OutputKey() string {
	if s.ext == "parquet" {
		return filepath.Join(s.dir, s.prefix)
	}
	return filepath.Join(s.dir, s.prefix) + "." + s.ext
}

// Position implements flow.CheckpointSink: rows in the output.
func (s *tableSink) Position() int64 { return s.pos.Load() }

// Replayed implements flow.ReplayCounter: events sent again that a
// finished file already held, so were skipped.
func (s *tableSink) Replayed() int64 { return s.replayed.Load() }

// Resume implements flow.CheckpointSink.
func (s *tableSink) Resume(pos int64, keepTail bool) error {
	if pos < 0 {
		return fmt.Errorf("sink %q: negative checkpoint %d", s.name, pos)
	}
	s.resume, s.keepTail = pos, keepTail
	return nil
}

func (s *tableSink) finalName(seq int) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%06d.%s", s.prefix, seq, s.ext))
}
func (s *tableSink) tmpName(seq int) string {
	return filepath.Join(s.dir, fmt.Sprintf(".%s-%06d.%s.tmp", s.prefix, seq, s.ext))
}
func (s *tableSink) journalName(seq int) string {
	return filepath.Join(s.dir, fmt.Sprintf(".%s-%06d%s", s.prefix, seq, s.journalSuffix()))
}

// journalSuffix ends a journal's name: .journal for Parquet (as before
// the arrow sink existed), .arrow.journal or .arrows.journal for Arrow, so
// that sinks of both formats with one prefix in one directory never share
// a journal.
func (s *tableSink) journalSuffix() string {
	if s.ext == "parquet" {
		return ".journal"
	}
	return "." + s.ext + ".journal"
}

// kind names the file format in messages.
func (s *tableSink) kind() string {
	if s.ext == "parquet" {
		return "Parquet"
	}
	return "Arrow IPC"
}

// Open scans the directory, recovers from an earlier run and starts the
// roll timer.
func (s *tableSink) Open(context.Context) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("sink %q: create directory %s: %w — check that the path is writable", s.name, s.dir, err)
	}
	if err := s.recover(); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.rollTimer()
	return nil
}

// rollTimer finishes the file being written once it is max_age old, so
// rows that stop coming still end up in a readable file.
func (s *tableSink) rollTimer() {
	defer close(s.done)
	tick := max(min(s.maxAge/4, time.Second), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if s.cur != nil && time.Since(s.cur.opened) >= s.maxAge {
				if err := s.finish(); err != nil {
					s.log.Error("finishing a "+s.kind()+" file failed; the next write reports it", "error", err)
				}
			}
			s.mu.Unlock()
		}
	}
}

// Sync implements flow.CheckpointSink: the journal of the file being
// written is flushed and fsynced (finished files were synced when they
// were finished).
func (s *tableSink) Sync(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	if err := s.cur.jw.Flush(); err != nil {
		return fmt.Errorf("sink %q: flush journal: %w", s.name, err)
	}
	if err := s.cur.journal.Sync(); err != nil {
		return fmt.Errorf("sink %q: fsync journal: %w", s.name, err)
	}
	return nil
}

// Close finishes the file being written. It is safe after a failed Open
// and when called twice.
func (s *tableSink) Close(context.Context) error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.cur == nil {
		return nil
	}
	if err := s.finish(); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	return nil
}

// Write converts and writes the batch and flushes the journal, so a
// written batch survives a crash of flowctl (not of the machine: Sync
// fsyncs). Events that do not fit the schema are returned in a
// *flow.BatchError, for the dead-letter sink.
func (s *tableSink) Write(_ context.Context, batch []*flow.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sink %q: write after close", s.name)
	}
	if s.cols == nil {
		if err := s.setSchema(pqInfer(batch, s.attrs)); err != nil {
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
		s.log.Info(s.kind()+" schema inferred from the first batch", "columns", pqDescribe(s.cols))
	}
	var failed map[int]error
	for i, e := range batch {
		row, err := s.convert(e)
		if err != nil {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = pqRowError{err}
			continue
		}
		if s.skip > 0 {
			// A row a finished file already holds (conversion is
			// deterministic, so the same events make rows).
			s.skip--
			s.replayed.Add(1)
			continue
		}
		if err := s.writeRow(row); err != nil {
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
	}
	// A source that cannot be replayed (http with sync, kafka, nats,
	// postgres cdc) settles with its client once Write returns, without
	// waiting for a checkpoint: the rows must then be in the journal the
	// OS holds, so that they survive a SIGKILL (Sync fsyncs it).
	if c := s.cur; c != nil {
		if err := c.jw.Flush(); err != nil {
			return fmt.Errorf("sink %q: write journal %s: %w", s.name, s.journalName(c.seq), err)
		}
	}
	if failed != nil {
		return &flow.BatchError{Failed: failed}
	}
	return nil
}

// writeRow appends a converted row (s.row, s.jline) to the current file,
// starting one if needed, and finishes it when it is full.
func (s *tableSink) writeRow(row parquet.Row) error {
	if s.cur == nil {
		if err := s.start(s.pos.Load(), false); err != nil {
			return err
		}
	}
	c := s.cur
	if !c.restoring {
		if _, err := c.jw.Write(s.jline); err != nil {
			return fmt.Errorf("write journal %s: %w", s.journalName(c.seq), err)
		}
	}
	if err := c.w.WriteRow(row); err != nil {
		return fmt.Errorf("write %s: %w", c.tmp, err)
	}
	c.rows++
	c.inGroup++
	c.bytes += int64(len(s.jline))
	s.pos.Add(1)
	if c.inGroup >= s.rgRows {
		if err := c.w.EndGroup(); err != nil {
			return fmt.Errorf("write %s: %w", c.tmp, err)
		}
		c.inGroup = 0
	}
	if c.rows >= s.maxRows || c.bytes >= s.maxBytes {
		return s.finish()
	}
	return nil
}

func (s *tableSink) writerOptions() []parquet.WriterOption {
	opts := []parquet.WriterOption{s.schema, parquet.KeyValueMetadata(pqSchemaKey, pqEncodeSchema(s.cols)), parquet.CreatedBy("flowctl", "", "")}
	switch s.codec {
	case "snappy":
		opts = append(opts, parquet.Compression(&parquet.Snappy))
	case "zstd":
		opts = append(opts, parquet.Compression(&parquet.Zstd))
	case "gzip":
		opts = append(opts, parquet.Compression(&parquet.Gzip))
	}
	return opts
}

// start creates the temporary file and the journal of file s.seq; the
// journal's first line records the position of its first row and the
// schema. Restoring, the journal exists and is appended to.
func (s *tableSink) start(first int64, restoring bool) error {
	c := &pqFile{seq: s.seq, tmp: s.tmpName(s.seq), opened: time.Now(), restoring: restoring}
	f, err := os.OpenFile(c.tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w — check that the directory is writable", c.tmp, err)
	}
	jflags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if restoring {
		jflags = os.O_WRONLY | os.O_APPEND
	}
	j, err := os.OpenFile(s.journalName(s.seq), jflags, 0o644)
	if err != nil {
		f.Close()
		return fmt.Errorf("create %s: %w", s.journalName(s.seq), err)
	}
	c.f, c.journal = f, j
	c.bw = bufio.NewWriterSize(f, 256<<10)
	c.jw = bufio.NewWriterSize(j, 64<<10)
	if s.ext == "parquet" {
		c.w = &pqWriter{w: parquet.NewWriter(c.bw, s.writerOptions()...)}
	} else if c.w, err = s.newArrowWriter(c.bw); err != nil {
		f.Close()
		j.Close()
		return fmt.Errorf("create %s: %w", c.tmp, err)
	}
	if !restoring {
		line, _ := jsonMarshalLine(pqJournalHeader{Start: first, Columns: s.cols})
		if _, err := c.jw.Write(line); err != nil {
			f.Close()
			j.Close()
			return err
		}
	}
	s.cur = c
	return nil
}

// finish writes the footer of the current file, fsyncs it, renames it
// into place, fsyncs the directory and removes the journal.
func (s *tableSink) finish() error {
	c := s.cur
	if c == nil {
		return nil
	}
	s.cur = nil
	s.seq++
	err := c.w.Close()
	if err == nil {
		err = c.bw.Flush()
	}
	if err == nil {
		err = c.f.Sync()
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	_ = c.jw.Flush()
	_ = c.journal.Close()
	if err != nil {
		// The journal stays: a resumed run rebuilds the file from it.
		return fmt.Errorf("finish %s: %w", c.tmp, err)
	}
	final := s.finalName(c.seq)
	if err := os.Rename(c.tmp, final); err != nil {
		return fmt.Errorf("rename %s to %s: %w", c.tmp, final, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", s.dir, err)
	}
	if err := os.Remove(s.journalName(c.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove journal: %w", err)
	}
	s.indexFinished(final, int64(c.rows))
	return nil
}

// setSchema fixes the columns (sorted by name, as Parquet orders a
// group's fields) and builds the Parquet schema.
func (s *tableSink) setSchema(cols []pqColumn) error {
	cols = slices.Clone(cols)
	slices.SortFunc(cols, func(a, b pqColumn) int { return strings.Compare(a.Name, b.Name) })
	g := parquet.Group{}
	for _, c := range cols {
		n := pqNode(c.Type)
		if c.Optional {
			n = parquet.Optional(n)
		}
		g[c.Name] = n
	}
	sch := parquet.NewSchema("event", g)
	got := sch.Columns()
	if len(got) != len(cols) {
		return fmt.Errorf("schema has %d columns, expected %d", len(got), len(cols))
	}
	s.byName = make(map[string]int, len(cols))
	for i, c := range cols {
		if len(got[i]) != 1 || got[i][0] != c.Name {
			return fmt.Errorf("schema column %d is %v, expected %s", i, got[i], c.Name)
		}
		s.byName[c.Name] = i
	}
	s.cols, s.schema = cols, sch
	return nil
}

// tableWriter turns a file's rows into bytes.
type tableWriter interface {
	// WriteRow adds a row (one value per column, in column order).
	WriteRow(parquet.Row) error
	// EndGroup ends the row group (Parquet) or record batch (Arrow) of
	// the rows written since the last one.
	EndGroup() error
	// Close ends the last group and writes the footer.
	Close() error
}

// pqWriter is the Parquet tableWriter.
type pqWriter struct {
	w   *parquet.Writer
	one [1]parquet.Row
}

func (p *pqWriter) WriteRow(row parquet.Row) error {
	p.one[0] = row
	_, err := p.w.WriteRows(p.one[:])
	return err
}
func (p *pqWriter) EndGroup() error { return p.w.Flush() }
func (p *pqWriter) Close() error    { return p.w.Close() }

// pqRowError is an event that does not fit the schema: trying again
// cannot help, so the engine applies on_error's final step at once
// (dead_letter, drop or stop; see flow.ErrPermanent).
type pqRowError struct{ err error }

func (e pqRowError) Error() string        { return e.err.Error() }
func (e pqRowError) Unwrap() error        { return e.err }
func (e pqRowError) Is(target error) bool { return target == flow.ErrPermanent }

var (
	_ flow.Sink           = (*tableSink)(nil)
	_ flow.Opener         = (*tableSink)(nil)
	_ flow.Closer         = (*tableSink)(nil)
	_ flow.CheckpointSink = (*tableSink)(nil)
	_ flow.ReplayCounter  = (*tableSink)(nil)
	_ tableWriter         = (*pqWriter)(nil)
)
