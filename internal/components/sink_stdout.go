package components

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioStdout is where stdout sinks write; tests swap it before building one.
var ioStdout io.Writer = os.Stdout

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSink,
		Name:     "stdout",
		Summary:  "Writes events to standard output as JSON lines, flushed after every batch.",
		Delivery: "At-least-once: lines printed after the last checkpoint are printed again after a crash.",
		Fields:   []flow.Field{ioFormatField},
		Examples: []string{"format: data", "format: envelope"},
		Validate: validateWith(ioParseFormat),
		New: func(bc flow.BuildContext) (any, error) {
			f, err := ioParseFormat(bc.Config)
			if err != nil {
				return nil, err
			}
			return &stdoutSink{name: bc.Name, format: f, w: bufio.NewWriterSize(ioStdout, 64<<10)}, nil
		},
	})
}

// stdoutSink writes JSON lines to a writer (os.Stdout outside tests).
type stdoutSink struct {
	name   string
	format ioFormat
	mu     sync.Mutex
	w      *bufio.Writer
	line   []byte // scratch, reused
}

// Write writes the batch and flushes it, so what a reader of stdout sees
// is never behind the acknowledgements.
func (s *stdoutSink) Write(_ context.Context, batch []*flow.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ioWriteLines(s.w, batch, s.format, &s.line); err != nil {
		return fmt.Errorf("sink %q: write stdout: %w", s.name, err)
	}
	return nil
}

// Close flushes what is buffered (nothing, after a successful Write).
func (s *stdoutSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("sink %q: flush stdout: %w", s.name, err)
	}
	return nil
}

// ioWriteLines writes a batch as JSON lines to w and flushes it. Data that
// needs no reshaping goes straight into the bufio buffer; only envelopes
// and multi-line data are built in scratch, which is reused, so a batch
// allocates nothing once scratch has grown.
func ioWriteLines(w *bufio.Writer, batch []*flow.Event, f ioFormat, scratch *[]byte) error {
	for _, e := range batch {
		if f == ioFormatData && !ioHasNewline(e.Data) {
			w.Write(e.Data)
		} else {
			*scratch = ioAppendLine((*scratch)[:0], e, f)
			w.Write(*scratch)
		}
		if err := w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return w.Flush()
}

var (
	_ flow.Sink   = (*stdoutSink)(nil)
	_ flow.Closer = (*stdoutSink)(nil)
)
