package components

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSink,
		Name:     "file",
		Summary:  "Writes events to a file as JSON lines; every batch is on disk (flushed) before it is acknowledged.",
		Delivery: "Exactly once across a crash when its events come, in order, from sources that can be replayed (file, generate): a resumed run keeps what was written up to the checkpoint and compares what came after it with the replayed events: matching bytes are not written twice (the file only grows), and from the first byte that differs the old tail is replaced. Fed by several sources, by an unordered parallel processor or by a source that cannot be replayed: at-least-once (events after the checkpoint are written again).",
		Fields: []flow.Field{
			{Name: "path", Type: flow.TypeString, Required: true, Example: "out.jsonl",
				Description: "The file to write; relative paths are resolved against the pipeline file's directory. Missing parent directories are created."},
			ioFormatField,
			{Name: "mode", Type: flow.TypeString, Enum: []string{"truncate", "append"},
				Description: "What a first run (no checkpoint of the pipeline, or --from-start) does with an existing file: truncate (the default) starts it empty, append writes after what it holds. A run that resumes from a checkpoint never truncates: it keeps what was written up to the checkpoint and checks what came after it against the events sent again (matching bytes are not written twice); a sink that is new (also one a reload adds to a running pipeline) or writes to another path than at the checkpoint keeps what that file holds and appends, as its sources go on from their checkpoint."},
			{Name: "append", Type: flow.TypeBool, Description: "The earlier spelling of mode: append (true) or mode: truncate (false)."},
		},
		Examples: []string{"path: out.jsonl", "path: archive/events.jsonl\nformat: envelope\nmode: append"},
		Validate: validateWith(ioParseFileSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := ioParseFileSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.path = ioResolvePath(bc.Dir, s.path)
			if abs, err := filepath.Abs(s.path); err == nil {
				s.path = abs
			}
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// fileSink writes JSON lines to a file through a 64 KiB buffer. It counts
// the bytes it wrote, so that a checkpoint can say how much of the file
// holds acknowledged events (see flow.CheckpointSink).
type fileSink struct {
	name   string
	path   string // absolute
	format ioFormat
	append bool
	log    *slog.Logger
	// resume is the committed length to keep, or -1 on a first run;
	// keepTail keeps what follows it too (flow.CheckpointSink.Resume).
	resume   int64
	keepTail bool

	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	line []byte // scratch, reused
	size countingWriter
	// verifyEnd, when above the position, is the length the file had when
	// a resumed run opened it: the bytes between the committed length and
	// it were written after the checkpoint, and the replayed events are
	// compared with them instead of written again (see writeVerifying).
	verifyEnd int64
	replayed  atomic.Int64 // lines found already written by the run before
	batchBuf  []byte       // scratch for writeVerifying
	fileBuf   []byte
}

// countingWriter counts what goes through it to the file.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func ioParseFileSink(cfg flow.Config) (*fileSink, error) {
	var errs []error
	s := &fileSink{path: ioCfgString(cfg, "path", ""), resume: -1}
	switch mode := ioCfgString(cfg, "mode", ""); mode {
	case "", "truncate", "append":
		s.append = mode == "append"
		if _, set := cfg["append"]; set {
			a := ioCfgBool(cfg, "append", false)
			if mode != "" && a != s.append {
				errs = append(errs, ioFieldErr("append", fmt.Sprintf("append: %v contradicts mode: %s", a, mode), "keep only mode"))
			}
			s.append = a
		}
	default:
		errs = append(errs, ioFieldErr("mode", fmt.Sprintf("unknown mode %q", mode), `use "truncate" or "append"`))
	}
	if s.path == "" {
		errs = append(errs, ioFieldErr("path", "is required", "name the file to write, e.g. path: out.jsonl"))
	}
	f, err := ioParseFormat(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	s.format = f
	return s, errors.Join(errs...)
}

// Open creates the file, or truncates it or opens it for appending on a
// first run. When resuming it keeps exactly the committed length and
// treats what lies after it as a tail to check the replayed events
// against (see writeVerifying).
func (s *fileSink) Open(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("sink %q: create directory for %s: %w", s.name, s.path, err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	switch {
	case s.resume >= 0:
		flags = os.O_RDWR | os.O_CREATE
	case s.append:
		flags = os.O_RDWR | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(s.path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("sink %q: %w — check that the path is writable", s.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	size := st.Size()
	if s.resume >= 0 {
		if size < s.resume {
			f.Close()
			return fmt.Errorf("sink %q: %s is %d bytes, shorter than the %d bytes committed at the last checkpoint: it was changed outside flowctl — put it back, or start over with flowctl run --from-start (or flowctl state reset)", s.name, s.path, size, s.resume)
		}
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
		if !s.keepTail && size > s.resume {
			s.verifyEnd = size
			size = s.resume
		}
	}
	if s.verifyEnd == 0 && size > 0 && st.Mode().IsRegular() && (s.resume >= 0 || s.append) {
		// What the file holds is kept and written after: a last line
		// without a newline (torn by a kill in the middle of a batch
		// bigger than the buffer, or written so by someone else) is
		// completed, so the next event is not glued to it.
		n, err := s.terminate(f, size)
		if err != nil {
			f.Close()
			return fmt.Errorf("sink %q: %s: %w", s.name, s.path, err)
		}
		size += n
	}
	s.f = f
	s.size.w = f
	s.size.n.Store(size)
	s.w = bufio.NewWriterSize(&s.size, 64<<10)
	return nil
}

// terminate writes a newline at the end of f (size bytes, its offset at
// the end) when its last byte is not one, and returns how many bytes it
// wrote.
func (s *fileSink) terminate(f *os.File, size int64) (int64, error) {
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return 0, fmt.Errorf("read its last byte: %w", err)
	}
	if last[0] == '\n' {
		return 0, nil
	}
	s.log.Warn("the file's last line has no newline (a run killed in the middle of a batch, or another writer): it is kept and completed with one", "path", s.path, "offset", size)
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return 0, fmt.Errorf("complete its last line: %w", err)
	}
	return 1, nil
}

// writeVerifying writes a batch of a resumed run while the file still
// holds bytes written after the checkpoint. The replayed events are the
// ones that produced those bytes, so where the pipeline is deterministic
// their lines match what is there: matching bytes are only counted, never
// rewritten, and the file never shrinks. At the first byte that differs
// (a step whose output changes between runs, such as a timestamp) the
// rest of the old tail is cut off and the new lines are written from
// there. A torn last line is completed.
func (s *fileSink) writeVerifying(batch []*flow.Event) error {
	buf := s.batchBuf[:0]
	for _, e := range batch {
		if s.format == ioFormatData && !ioHasNewline(e.Data) {
			buf = append(buf, e.Data...)
		} else {
			buf = ioAppendLine(buf, e, s.format)
		}
		buf = append(buf, '\n')
	}
	s.batchBuf = buf
	pos := s.size.n.Load()
	n := int(min(int64(len(buf)), s.verifyEnd-pos))
	if cap(s.fileBuf) < n {
		s.fileBuf = make([]byte, n)
	}
	old := s.fileBuf[:n]
	if _, err := s.f.ReadAt(old, pos); err != nil {
		return fmt.Errorf("sink %q: read back %s: %w", s.name, s.path, err)
	}
	same := 0
	for same < n && old[same] == buf[same] {
		same++
	}
	s.size.n.Add(int64(same))
	s.replayed.Add(int64(bytes.Count(buf[:same], []byte{'\n'})))
	if same == len(buf) {
		if pos+int64(same) == s.verifyEnd {
			s.verifyEnd = 0 // the whole tail was written again, unchanged
		}
		return nil
	}
	at := pos + int64(same)
	if same < n {
		s.log.Warn("the events written again differ from what the file held after the checkpoint (a step whose output changes between runs); the rest of the old tail is replaced",
			"path", s.path, "offset", at, "bytes", s.verifyEnd-at)
	}
	if err := s.f.Truncate(at); err != nil {
		return fmt.Errorf("sink %q: cut %s at %d: %w", s.name, s.path, at, err)
	}
	if _, err := s.f.Seek(at, io.SeekStart); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	s.verifyEnd = 0
	if _, err := s.w.Write(buf[same:]); err != nil {
		return err
	}
	return s.w.Flush()
}

// OutputKey implements flow.CheckpointSink.
func (s *fileSink) OutputKey() string { return s.path }

// Position implements flow.CheckpointSink: the file's length. Write
// flushes every batch, so nothing stays buffered between calls.
func (s *fileSink) Position() int64 { return s.size.n.Load() }

// Sync implements flow.CheckpointSink. It is a no-op once closed (Close
// synced).
func (s *fileSink) Sync(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("sink %q: flush %s: %w", s.name, s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sink %q: fsync %s: %w", s.name, s.path, err)
	}
	return nil
}

// Replayed implements flow.ReplayCounter: the replayed lines that were
// already in the file.
func (s *fileSink) Replayed() int64 { return s.replayed.Load() }

// Resume implements flow.CheckpointSink.
func (s *fileSink) Resume(pos int64, keepTail bool) error {
	if pos < 0 {
		return fmt.Errorf("sink %q: negative checkpoint %d", s.name, pos)
	}
	s.resume, s.keepTail = pos, keepTail
	return nil
}

// Write appends the batch and flushes it to the file, so an acknowledged
// batch survives a crash of flowctl (not of the machine: Close fsyncs).
// It allocates nothing per event.
func (s *fileSink) Write(_ context.Context, batch []*flow.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return fmt.Errorf("sink %q: write before open", s.name)
	}
	if s.verifyEnd > 0 {
		if err := s.writeVerifying(batch); err != nil {
			return fmt.Errorf("sink %q: write %s: %w", s.name, s.path, err)
		}
		return nil
	}
	if err := ioWriteLines(s.w, batch, s.format, &s.line); err != nil {
		return fmt.Errorf("sink %q: write %s: %w", s.name, s.path, err)
	}
	return nil
}

// Close flushes, fsyncs and closes the file. It is safe after a failed
// Open and when called twice.
func (s *fileSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	var errs []error
	if err := s.w.Flush(); err != nil {
		errs = append(errs, err)
	}
	if s.verifyEnd > 0 {
		// The run ended before its replay reached the end of what was
		// written after the checkpoint: those bytes are not covered by a
		// checkpoint, and the next run checks them again.
		s.log.Info("the run ended before the replayed events covered the tail written after the checkpoint; the next run checks the rest", "path", s.path, "bytes", s.verifyEnd-s.size.n.Load())
	}
	if err := s.f.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := s.f.Close(); err != nil {
		errs = append(errs, err)
	}
	s.f, s.w = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sink %q: close %s: %w", s.name, s.path, err)
	}
	return nil
}

var (
	_ flow.Sink           = (*fileSink)(nil)
	_ flow.Opener         = (*fileSink)(nil)
	_ flow.Closer         = (*fileSink)(nil)
	_ flow.CheckpointSink = (*fileSink)(nil)
	_ flow.ReplayCounter  = (*fileSink)(nil)
)
