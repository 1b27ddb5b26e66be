package external

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// stdioSource reads a stdio source's stdout: one event per line,
// {"event":{...}} or {"data":...}. Batches are what is ready, up to
// flow.MaxBatch. Stdio sources get no acknowledgements.
type stdioSource struct {
	w   io.WriteCloser
	log *slog.Logger

	lines chan *flow.Event
	errc  chan error

	mu     sync.Mutex
	seq    uint64
	closed bool
}

func newStdioSource(w io.WriteCloser, r io.Reader, log *slog.Logger) *stdioSource {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &stdioSource{w: w, log: log, lines: make(chan *flow.Event, flow.MaxBatch), errc: make(chan error, 1)}
	go s.read(r)
	return s
}

func (s *stdioSource) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	base := &flow.Event{}
	n := 0
	for {
		line, err := readLine(br)
		if len(bytes.TrimSpace(line)) > 0 {
			var l stdioLine
			var ev *flow.Event
			perr := json.Unmarshal(line, &l)
			if perr == nil {
				w := l.Event
				if w == nil && l.Data != nil {
					w = &wireEvent{Data: l.Data}
				}
				if w == nil {
					perr = errors.New(`a source line needs "event" or "data"`)
				} else {
					ev, perr = w.toEvent(base)
				}
			}
			if perr != nil {
				s.log.Warn("stdio source: ignoring a line on stdout (logs belong on stderr)", "err", perr, "line", truncate(line, 200))
			} else {
				n++
				if ev.Time.IsZero() {
					ev.Time = time.Now()
				}
				s.lines <- ev
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("stdio source: read stdout: %w", err)
			}
			s.errc <- err
			close(s.lines)
			return
		}
	}
}

// Recv implements SourceConn: it waits for one event, then takes what else
// is ready. io.EOF means the source closed its stdout (it is exhausted).
func (s *stdioSource) Recv(ctx context.Context) (uint64, []*flow.Event, error) {
	var batch []*flow.Event
	select {
	case ev, ok := <-s.lines:
		if !ok {
			// Keep the error for every later Recv: a caller may ask again
			// after io.EOF (conformance does), and must not block forever.
			err := <-s.errc
			s.errc <- err
			return 0, nil, err
		}
		batch = append(flow.NewBatch(), ev)
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	for len(batch) < flow.MaxBatch {
		select {
		case ev, ok := <-s.lines:
			if !ok {
				s.errc <- <-s.errc // keep the error for the next Recv
				goto out
			}
			batch = append(batch, ev)
			continue
		default:
		}
		break
	}
out:
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	return seq, batch, nil
}

// Ack implements SourceConn; stdio sources are not acknowledged.
func (s *stdioSource) Ack(context.Context, uint64) error { return nil }

// Close closes the source's stdin, its signal to stop.
func (s *stdioSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.w.Close()
}

var _ SourceConn = (*stdioSource)(nil)
