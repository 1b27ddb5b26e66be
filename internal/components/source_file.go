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
	"slices"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSource,
		Name:     "file",
		Summary:  "Reads JSON lines or raw lines from the files a glob matches, in sorted order; with follow, keeps reading like tail -F.",
		Delivery: "Resumes after its last acknowledged line: per file its device, inode and byte offset are checkpointed, with a checksum of the 64 bytes before the offset, and ids go on from the line number. A file replaced or truncated since the checkpoint (also one truncated and written again past the offset) is read from its start.",
		Fields: append([]flow.Field{
			{Name: "path", Type: flow.TypeString, Required: true, Example: "events/*.jsonl",
				Description: "A file or a glob (*, ?, [...]); relative paths are resolved against the pipeline file's directory. Files are read in sorted order. Event ids are <component>:<line> for a plain path and <component>:<file base name>:<line> for a glob."},
			{Name: "follow", Type: flow.TypeBool, Default: false,
				Description: "Keep reading appended data like tail -F: notices truncation and rotation and picks up new files matching the glob; runs until the pipeline stops."},
			{Name: "poll_interval", Type: flow.TypeDuration, Default: "250ms",
				Description: "With follow, how often to look for appended data, truncation, rotation and new files."},
		}, ioLineSourceFields...),
		Examples: []string{
			"path: events.jsonl",
			"path: logs/*.log\nformat: lines\nfollow: true",
		},
		Validate:    validateWith(ioParseFileSource),
		OutputTypes: sourceEventTypes,
		New: func(bc flow.BuildContext) (any, error) {
			s, err := ioParseFileSource(bc.Config)
			if err != nil {
				return nil, err
			}
			s.ioLineSource, _ = ioParseLineSource(bc.Name, bc.Config)
			s.pattern = ioResolvePath(bc.Dir, s.pattern)
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			s.ioLineSource.log = s.log
			return s, nil
		},
	})
}

// fileSource reads lines from files matching a glob. One reader buffer is
// reused across files in the bounded mode; in follow mode every followed
// file keeps its own (smaller) one, because each may stop mid-line.
//
// Event ids are <component>:<line> when path names one file and
// <component>:<file base name>:<line> when it is a glob. Line numbers count
// every line (blank ones too) and restart at 1 when a followed file is
// truncated or replaced. Files are read from their start, also in follow
// mode (tail -F -n +1), so nothing written before the pipeline started is
// missed.
type fileSource struct {
	ioLineSource
	pattern string
	// perFile: the path is a glob, so ids name the file as well as the
	// line. Decided from the pattern, not from how many files match today,
	// so ids do not change shape when a second file appears.
	perFile bool
	follow  bool
	poll    time.Duration
	log     *slog.Logger
	// resume holds the checkpointed positions by absolute path; each is
	// used once, by the first open of its path.
	resume map[string]ioFilePos
}

// Resume implements flow.Resumer: each file goes on after its last
// acknowledged line, if the path still names the same file and it is not
// shorter than that (else it is read from its start, and the log says
// why).
func (s *fileSource) Resume(positions map[string][]byte) error {
	s.resume = map[string]ioFilePos{}
	for k, v := range positions {
		var p ioFilePos
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("source %q: checkpoint of %s: %w", s.name, k, err)
		}
		s.resume[k] = p
	}
	return nil
}

// openAt opens path and places lr where the checkpoint says this file was
// left, or at its start.
func (s *fileSource) openAt(path string, lr *ioLineReader) (*os.File, os.FileInfo, *ioCursor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	key, err := filepath.Abs(path)
	if err != nil {
		key = path
	}
	cur := &ioCursor{key: key}
	id, hasID := ioIdentity(st)
	cur.id = id
	lr.reset(f)
	p, ok := s.resume[key]
	if !ok {
		return f, st, cur, nil
	}
	delete(s.resume, key)
	switch {
	case hasID && (p.Dev != id.dev || p.Ino != id.ino):
		s.log.Warn("the file was replaced since the last checkpoint: reading it from the start", "path", path)
	case st.Mode().IsRegular() && st.Size() < p.Offset:
		s.log.Warn("the file is shorter than at the last checkpoint (truncated): reading it from the start", "path", path, "size", st.Size(), "checkpoint", p.Offset)
	case st.Mode().IsRegular() && !ioMarkMatches(f, p):
		s.log.Warn("the file's bytes before the checkpoint changed (truncated and written again): reading it from the start", "path", path, "checkpoint", p.Offset)
	default:
		if _, err := f.Seek(p.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, nil, nil, err
		}
		lr.seek(f, p.Offset, p.Line)
		s.log.Info("resuming", "path", path, "line", p.Line, "offset", p.Offset)
	}
	return f, st, cur, nil
}

// Bounded implements flow.Bounded: a file that is not followed ends.
func (f *fileSource) Bounded() bool { return !f.follow }

func ioParseFileSource(cfg flow.Config) (*fileSource, error) {
	var errs []error
	s := &fileSource{}
	if _, err := ioParseLineSource("", cfg); err != nil {
		errs = append(errs, err)
	}
	s.pattern = ioCfgString(cfg, "path", "")
	if s.pattern == "" {
		errs = append(errs, ioFieldErr("path", "is required", "name the file to read, e.g. path: events.jsonl"))
	} else if _, err := filepath.Match(s.pattern, ""); err != nil {
		errs = append(errs, ioFieldErr("path", fmt.Sprintf("%q is not a valid glob: %v", s.pattern, err), "check the brackets; escape a literal *, ? or [ with a backslash"))
	}
	s.perFile = strings.ContainsAny(s.pattern, `*?[\`)
	s.follow = ioCfgBool(cfg, "follow", false)
	poll, err := ioCfgDuration(cfg, "poll_interval", 250*time.Millisecond)
	if err == nil && poll <= 0 {
		err = ioFieldErr("poll_interval", "must be positive", `use e.g. "250ms"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.poll = poll
	return s, errors.Join(errs...)
}

// Open checks that a bounded source has something to read, so a mistyped
// path fails before the pipeline starts rather than producing nothing.
func (s *fileSource) Open(ctx context.Context) error {
	if s.follow {
		return nil
	}
	m, err := s.glob()
	if err != nil {
		return err
	}
	if len(m) == 0 {
		return fmt.Errorf("source %q: no file matches %q — check the path (relative paths are resolved against the pipeline file's directory) or set follow: true to wait for files", s.name, s.pattern)
	}
	return nil
}

// glob lists the files matching the pattern, sorted. Directories are left
// out; a named pipe or device named explicitly is read like a file.
func (s *fileSource) glob() ([]string, error) {
	m, err := filepath.Glob(s.pattern)
	if err != nil {
		return nil, fmt.Errorf("source %q: bad path pattern %q: %w", s.name, s.pattern, err)
	}
	out := m[:0]
	for _, p := range m {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *fileSource) idPrefix(path string) string {
	if s.perFile {
		return s.name + ":" + filepath.Base(path) + ":"
	}
	return s.name + ":"
}

// Run reads every matching file to its end (bounded) or follows them until
// ctx is done.
func (s *fileSource) Run(ctx context.Context, out flow.Emitter) error {
	if s.follow {
		return s.runFollow(ctx, out)
	}
	files, err := s.glob()
	if err != nil {
		return err
	}
	lr := newIOLineReader(nil, ioReadBufSize)
	for _, p := range files {
		if err := s.readAll(ctx, out, lr, p); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

func (s *fileSource) readAll(ctx context.Context, out flow.Emitter, lr *ioLineReader, path string) error {
	f, _, cur, err := s.openAt(path, lr)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	defer f.Close()
	if err := s.pump(ctx, out, lr, s.idPrefix(path), true, cur); err != io.EOF {
		return fmt.Errorf("source %q: read %s: %w", s.name, path, err)
	}
	return nil
}

// ioFollowed is one file a following source has open.
type ioFollowed struct {
	path   string
	f      *os.File
	info   os.FileInfo
	lr     *ioLineReader
	prefix string
	cur    *ioCursor
}

// ioFollowBufSize is the starting buffer of a followed file: smaller than
// the bounded reader's, since a glob may match many files.
const ioFollowBufSize = 64 << 10

// runFollow is the tail -F loop: read every followed file to its current
// end, then look for rotation (the path now names another file, or none),
// truncation (the file is shorter than what was read) and new files, sleep
// poll_interval, repeat. Polling needs no platform-specific watcher and
// costs one stat per file per interval.
func (s *fileSource) runFollow(ctx context.Context, out flow.Emitter) error {
	tracked := map[string]*ioFollowed{}
	defer func() {
		for _, t := range tracked {
			t.f.Close()
		}
	}()
	for {
		if err := s.discover(tracked); err != nil {
			return err
		}
		paths := make([]string, 0, len(tracked))
		for p := range tracked {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			t := tracked[p]
			if err := s.pump(ctx, out, t.lr, t.prefix, false, t.cur); err != io.EOF {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("source %q: read %s: %w", s.name, p, err)
			}
			st, err := os.Stat(p)
			switch {
			case err != nil || !os.SameFile(st, t.info):
				// Rotated or removed: finish what the old file holds
				// (written between our last read and the rename), then
				// let discover open whatever the path names now.
				if err := s.pump(ctx, out, t.lr, t.prefix, true, t.cur); err != io.EOF {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("source %q: read %s: %w", s.name, p, err)
				}
				t.f.Close()
				delete(tracked, p)
				s.log.Info("followed file rotated or removed", "path", p)
			case st.Mode().IsRegular() && st.Size() < t.lr.pos:
				if _, err := t.f.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("source %q: rewind truncated %s: %w", s.name, p, err)
				}
				t.lr.reset(t.f)
				s.log.Info("followed file truncated, reading from the start", "path", p)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.poll):
		}
	}
}

// discover opens files matching the glob that are not followed yet; they
// are read from their start.
func (s *fileSource) discover(tracked map[string]*ioFollowed) error {
	files, err := s.glob()
	if err != nil {
		return err
	}
	for _, p := range files {
		if tracked[p] != nil {
			continue
		}
		lr := newIOLineReader(nil, ioFollowBufSize)
		f, st, cur, err := s.openAt(p, lr)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // gone between glob and open
			}
			return fmt.Errorf("source %q: %w", s.name, err)
		}
		tracked[p] = &ioFollowed{path: p, f: f, info: st, lr: lr, prefix: s.idPrefix(p), cur: cur}
	}
	return nil
}

var (
	_ flow.Source  = (*fileSource)(nil)
	_ flow.Opener  = (*fileSource)(nil)
	_ flow.Resumer = (*fileSource)(nil)
)
