package components

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSink,
		Name:    "file",
		Summary: "Writes events to a file as JSON lines; every batch is on disk (flushed) before it is acknowledged.",
		Fields: []flow.Field{
			{Name: "path", Type: flow.TypeString, Required: true, Example: "out.jsonl",
				Description: "The file to write; relative paths are resolved against the pipeline file's directory. Missing parent directories are created."},
			ioFormatField,
			{Name: "append", Type: flow.TypeBool, Default: false, Description: "Append to an existing file instead of truncating it when the sink opens."},
		},
		Examples: []string{"path: out.jsonl", "path: archive/events.jsonl\nformat: envelope\nappend: true"},
		Validate: validateWith(ioParseFileSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := ioParseFileSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.path = ioResolvePath(bc.Dir, s.path)
			return s, nil
		},
	})
}

// fileSink writes JSON lines to a file through a 64 KiB buffer.
type fileSink struct {
	name   string
	path   string
	format ioFormat
	append bool

	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	line []byte // scratch, reused
}

func ioParseFileSink(cfg flow.Config) (*fileSink, error) {
	var errs []error
	s := &fileSink{path: ioCfgString(cfg, "path", ""), append: ioCfgBool(cfg, "append", false)}
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

// Open creates (or truncates, or opens for appending) the file.
func (s *fileSink) Open(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("sink %q: create directory for %s: %w", s.name, s.path, err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if s.append {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(s.path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("sink %q: %w — check that the path is writable", s.name, err)
	}
	s.f = f
	s.w = bufio.NewWriterSize(f, 64<<10)
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
	_ flow.Sink   = (*fileSink)(nil)
	_ flow.Opener = (*fileSink)(nil)
	_ flow.Closer = (*fileSink)(nil)
)
