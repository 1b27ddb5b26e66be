package components

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/flowctl/flowctl/internal/flow"
)

// DeadLetterSourceType is the type of the hidden source that `flowctl dlq
// replay` reads a dead-letter file with.
const DeadLetterSourceType = "dlq"

// deadLetterSourceSpec is not among the built-ins (builtins): a pipeline
// file cannot name it, and `flowctl components` and the schema do not list
// it. `flowctl dlq replay` adds it to its own registry (RegisterReplay).
var deadLetterSourceSpec = &flow.ComponentSpec{
	Role:     flow.RoleSource,
	Name:     DeadLetterSourceType,
	Summary:  "Emits again the original events of the dead letters one component failed, from a dead-letter file (flowctl dlq replay).",
	Delivery: "Resumes after its last acknowledged dead letter: the byte offset in the dead-letter file is checkpointed, so a replay is never replayed twice.",
	Fields: []flow.Field{
		{Name: "path", Type: flow.TypeString, Required: true, Description: "The dead-letter file (JSON lines, data or envelope format)."},
		{Name: "component", Type: flow.TypeString, Required: true, Description: "Replay the dead letters of this component only."},
		{Name: "until", Type: flow.TypeInt, Default: -1, Description: "Read no further than this byte offset (the dead-letter sink's committed length); -1 reads to the file's length when the source opens."},
	},
	New: func(bc flow.BuildContext) (any, error) {
		s := &dlqSource{name: bc.Name, log: bc.Logger, until: -1}
		s.path = ioResolvePath(bc.Dir, ioCfgString(bc.Config, "path", ""))
		if abs, err := filepath.Abs(s.path); err == nil {
			s.path = abs
		}
		s.component = ioCfgString(bc.Config, "component", "")
		until, err := cfgInt(bc.Config, "until", -1)
		if err != nil {
			return nil, err
		}
		s.until = int64(until)
		if s.path == "" || s.component == "" {
			return nil, fmt.Errorf("source %q: path and component are required", bc.Name)
		}
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		return s, nil
	},
}

// RegisterReplay adds the hidden dead-letter source to r.
func RegisterReplay(r *flow.Registry) error { return r.Register(deadLetterSourceSpec) }

// dlqSource reads a dead-letter file line by line and emits the original
// event of every dead letter of one component. Each batch carries the
// byte offset after its last line (key: the file's absolute path), so a
// second replay, or one killed mid-way, goes on after what was
// acknowledged. It reads no further than the length the file had when it
// opened (or until): the dead-letter sink appends events that fail again
// to the same file while it reads, and those wait for the next replay.
type dlqSource struct {
	name      string
	path      string // absolute
	component string
	until     int64
	log       *slog.Logger
	resume    *ioFilePos

	f     *os.File
	limit int64
}

// Resume implements flow.Resumer.
func (s *dlqSource) Resume(positions map[string][]byte) error {
	v, ok := positions[s.path]
	if !ok {
		return nil
	}
	var p ioFilePos
	if err := json.Unmarshal(v, &p); err != nil {
		return fmt.Errorf("source %q: checkpoint of %s: %w", s.name, s.path, err)
	}
	s.resume = &p
	return nil
}

// Open opens the dead-letter file and fixes where reading stops.
func (s *dlqSource) Open(context.Context) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	s.f, s.limit = f, st.Size()
	if s.until >= 0 && s.until < s.limit {
		s.limit = s.until
	}
	return nil
}

// Run emits the dead letters' original events up to the limit.
func (s *dlqSource) Run(ctx context.Context, out flow.Emitter) error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	id, hasID := ioIdentity(st)
	cur := &ioCursor{key: s.path, id: id}
	var start, line int64
	if p := s.resume; p != nil {
		switch {
		case hasID && (p.Dev != id.dev || p.Ino != id.ino):
			s.log.Warn("the dead-letter file was replaced since the last replay: reading it from the start", "path", s.path)
		case p.Offset > s.limit:
			s.log.Warn("the dead-letter file is shorter than at the last replay: reading it from the start", "path", s.path, "offset", p.Offset)
		default:
			start, line = p.Offset, p.Line
		}
	}
	if _, err := s.f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	lr := newIOLineReader(nil, ioFollowBufSize)
	lr.seek(io.LimitReader(s.f, s.limit-start), start, line)
	pe, _ := out.(flow.PositionEmitter)
	batch := flow.NewBatch()[:0]
	for {
		lines, nums, err := lr.next(ioMaxBatch, true)
		if errors.Is(err, errIOLineTooLong) {
			s.log.Warn("skipping an overlong line", "path", s.path, "error", err)
			continue
		}
		for i, l := range lines {
			d, perr := flow.ParseDeadLetter(l)
			if perr != nil {
				s.log.Warn("skipping a line that is not a dead letter", "path", s.path, "line", nums[i], "error", perr)
				continue
			}
			if d.Component != s.component {
				continue
			}
			ev, perr := d.Original()
			if perr != nil {
				s.log.Warn("skipping a dead letter", "path", s.path, "line", nums[i], "error", perr)
				continue
			}
			batch = append(batch, ev)
		}
		if len(batch) > 0 {
			var eerr error
			if pe != nil {
				eerr = pe.EmitAt(ctx, batch, cur.position(lr))
			} else {
				eerr = out.Emit(ctx, batch, nil)
			}
			if eerr != nil {
				if ctx.Err() != nil {
					return nil
				}
				return eerr
			}
			batch = flow.NewBatch()[:0]
		}
		switch {
		case err == io.EOF:
			// A last line without a newline is one the dead-letter sink
			// had not finished: it is not read.
			return nil
		case err != nil:
			return fmt.Errorf("source %q: read %s: %w", s.name, s.path, err)
		}
	}
}

// Bounded implements flow.Bounded: it ends at the limit.
func (s *dlqSource) Bounded() bool { return true }

// Close implements flow.Closer.
func (s *dlqSource) Close(context.Context) error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

var (
	_ flow.Source  = (*dlqSource)(nil)
	_ flow.Opener  = (*dlqSource)(nil)
	_ flow.Closer  = (*dlqSource)(nil)
	_ flow.Resumer = (*dlqSource)(nil)
	_ flow.Bounded = (*dlqSource)(nil)
)
