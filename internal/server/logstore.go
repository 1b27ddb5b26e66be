package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of the log store.
const (
	// defaultRingLines is how many lines per pipeline are kept in memory
	// (and so the most `logs --tail` can show).
	defaultRingLines = 10000
	// maxLogFile is the size at which a pipeline's log file is rotated
	// (one older file, NAME.log.1, is kept).
	maxLogFile = 32 << 20
	// maxLineLen truncates longer lines.
	maxLineLen = 16 << 10
	// followBuffer is how many lines a follower may lag before it is
	// dropped.
	followBuffer = 4096
)

// errFollowerBehind ends a follow stream that did not keep up.
var errFollowerBehind = errors.New("log follower fell behind; run logs again")

// LogLine is one line a pipeline's child wrote.
type LogLine struct {
	Time      time.Time `json:"time"`
	Pipeline  string    `json:"-"`
	Component string    `json:"component,omitempty"`
	Stream    string    `json:"stream"`
	Text      string    `json:"text"`
	Run       int64     `json:"run,omitempty"`
	// Level is a log record's level (DEBUG, INFO, WARN, ERROR); "" for a
	// line that was not one.
	Level string `json:"level,omitempty"`
	// Source is who wrote the line: sourceFlowctl, sourceComponent or ""
	// (other text the child printed).
	Source string `json:"source,omitempty"`
}

// Sources of a line.
const (
	sourceFlowctl   = "flowctl"
	sourceComponent = "component"
)

// LogFilter selects lines: by component, from a time on, from a level up.
// The zero value keeps every line.
type LogFilter struct {
	Component string
	Since     time.Time
	// MinLevel keeps lines of that level or above; a line without a
	// level counts as info. Zero keeps every level (slog.LevelInfo is
	// 0 too, so HasLevel says whether it is set).
	MinLevel slog.Level
	HasLevel bool
}

// Keep reports whether l passes f.
func (f LogFilter) Keep(l LogLine) bool {
	if f.Component != "" && l.Component != f.Component {
		return false
	}
	if !f.Since.IsZero() && l.Time.Before(f.Since) {
		return false
	}
	if f.HasLevel && lineLevel(l) < f.MinLevel {
		return false
	}
	return true
}

// lineLevel is l's level; a line without one counts as info.
func lineLevel(l LogLine) slog.Level {
	var lv slog.Level
	if l.Level == "" || lv.UnmarshalText([]byte(l.Level)) != nil {
		return slog.LevelInfo
	}
	return lv
}

// logStore keeps child output: a ring per pipeline in memory and, with a
// directory, an append-only JSON-lines file per pipeline that refills the
// ring after a restart. It is safe for concurrent use.
type logStore struct {
	dir  string // "" keeps lines in memory only
	size int

	mu    sync.Mutex
	pipes map[string]*pipeLog
}

// pipeLog is one pipeline's lines.
type pipeLog struct {
	ring  []LogLine
	next  int // index of the next write in ring
	full  bool
	file  *os.File
	fsize int64
	subs  map[*logFollower]struct{}
}

// logFollower receives new lines of one pipeline on C until it is closed;
// Err says why it was closed (nil: the pipeline was deleted or the store
// closed).
type logFollower struct {
	C      chan LogLine
	filter LogFilter
	err    error
	closed bool
}

func newLogStore(dir string, size int) (*logStore, error) {
	if size <= 0 {
		size = defaultRingLines
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("log store: %w", err)
		}
	}
	return &logStore{dir: dir, size: size, pipes: map[string]*pipeLog{}}, nil
}

func (s *logStore) path(pipeline string) string {
	return filepath.Join(s.dir, pipeline+".log")
}

// pipe returns pipeline's log, loading the tail of its file the first
// time. s.mu must be held.
func (s *logStore) pipe(pipeline string) *pipeLog {
	p := s.pipes[pipeline]
	if p != nil {
		return p
	}
	p = &pipeLog{ring: make([]LogLine, s.size), subs: map[*logFollower]struct{}{}}
	s.pipes[pipeline] = p
	if s.dir == "" {
		return p
	}
	for _, name := range []string{s.path(pipeline) + ".1", s.path(pipeline)} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		// Not a bufio.Scanner: its line limit would end the read at the
		// first long record (json escapes a byte of the text as up to six),
		// hiding every line after it. A file holds at most maxLogFile.
		br := bufio.NewReaderSize(f, 64<<10)
		for {
			b, err := br.ReadBytes('\n')
			var l LogLine
			if len(b) > 0 && json.Unmarshal(b, &l) == nil {
				l.Pipeline = pipeline
				p.push(l)
			}
			if err != nil {
				break
			}
		}
		f.Close()
	}
	return p
}

func (p *pipeLog) push(l LogLine) {
	p.ring[p.next] = l
	p.next++
	if p.next == len(p.ring) {
		p.next, p.full = 0, true
	}
}

// lines returns the kept lines, oldest first.
func (p *pipeLog) lines() []LogLine {
	if !p.full {
		return p.ring[:p.next]
	}
	out := make([]LogLine, 0, len(p.ring))
	out = append(out, p.ring[p.next:]...)
	return append(out, p.ring[:p.next]...)
}

// Append stores l and hands it to l.Pipeline's followers.
func (s *logStore) Append(l LogLine) {
	if len(l.Text) > maxLineLen {
		l.Text = l.Text[:maxLineLen] + "…(truncated)"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pipe(l.Pipeline)
	p.push(l)
	if s.dir != "" {
		s.write(l, p)
	}
	for f := range p.subs {
		if !f.filter.Keep(l) {
			continue
		}
		select {
		case f.C <- l:
		default:
			f.err = errFollowerBehind
			s.dropLocked(p, f)
		}
	}
}

// write appends l to its pipeline's file, rotating a full one. Errors
// are not fatal: the line is still in memory.
func (s *logStore) write(l LogLine, p *pipeLog) {
	if p.file == nil {
		f, err := os.OpenFile(s.path(l.Pipeline), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			return
		}
		st, _ := f.Stat()
		if st != nil {
			p.fsize = st.Size()
		}
		p.file = f
		if p.fsize > 0 && !endsWithNewline(f, p.fsize) {
			// The last line was torn (the server died in the middle of
			// writing it): end it, so that it does not swallow this one.
			n, _ := f.Write([]byte{'\n'})
			p.fsize += int64(n)
		}
	}
	b, _ := json.Marshal(l)
	b = append(b, '\n')
	n, _ := p.file.Write(b)
	p.fsize += int64(n)
	if p.fsize > maxLogFile {
		p.file.Close()
		p.file = nil
		_ = os.Rename(s.path(l.Pipeline), s.path(l.Pipeline)+".1")
	}
}

// endsWithNewline reports whether the file f of size bytes ends with a
// newline.
func endsWithNewline(f *os.File, size int64) bool {
	var b [1]byte
	n, _ := f.ReadAt(b[:], size-1)
	return n == 1 && b[0] == '\n'
}

// Tail returns up to n of the last lines of pipeline that pass filter;
// n == 0 means all kept, n < 0 none. With follow, the returned follower
// gets every such line appended afterwards: there is no gap and no
// overlap between the two.
func (s *logStore) Tail(pipeline string, filter LogFilter, n int, follow bool) ([]LogLine, *logFollower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pipe(pipeline)
	var out []LogLine
	if n >= 0 {
		all := p.lines()
		for i := len(all) - 1; i >= 0; i-- {
			if !filter.Keep(all[i]) {
				continue
			}
			out = append(out, all[i])
			if n > 0 && len(out) == n {
				break
			}
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	if !follow {
		return out, nil
	}
	f := &logFollower{C: make(chan LogLine, followBuffer), filter: filter}
	p.subs[f] = struct{}{}
	return out, f
}

// Components lists the components pipeline's kept lines are about,
// sorted.
func (s *logStore) Components(pipeline string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, l := range s.pipe(pipeline).lines() {
		if l.Component != "" {
			seen[l.Component] = true
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Unfollow stops f.
func (s *logStore) Unfollow(pipeline string, f *logFollower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pipes[pipeline]; p != nil {
		s.dropLocked(p, f)
	}
}

// EndFollowers closes every follower of pipeline (it was deleted).
func (s *logStore) EndFollowers(pipeline string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pipes[pipeline]; p != nil {
		for f := range p.subs {
			s.dropLocked(p, f)
		}
	}
}

func (s *logStore) dropLocked(p *pipeLog, f *logFollower) {
	if f.closed {
		return
	}
	f.closed = true
	delete(p.subs, f)
	close(f.C)
}

// Err says why f was closed.
func (s *logStore) Err(f *logFollower) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f.err
}

// Close ends every follower and closes the files.
func (s *logStore) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pipes {
		for f := range p.subs {
			s.dropLocked(p, f)
		}
		if p.file != nil {
			p.file.Close()
			p.file = nil
		}
	}
}

// lineWriter splits a child's output stream into LogLines.
type lineWriter struct {
	store    *logStore
	pipeline string
	stream   string
	run      int64
	known    map[string]bool
}

// componentKV finds component=NAME in a slog text line.
var componentKV = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?:^|\s)component=("(?:[^"\\]|\\.)*"|[^\s]+)`) })

// componentOf says which component a child's line is about: the
// component=NAME attribute of a log line, or the "NAME | " prefix the
// process driver puts before an external component's output.
func componentOf(text string, known map[string]bool) string {
	if name, _, ok := strings.Cut(text, " | "); ok && known[name] {
		return name
	}
	if m := componentKV().FindStringSubmatch(text); m != nil {
		v := m[1]
		if strings.HasPrefix(v, `"`) {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
		}
		if known[v] {
			return v
		}
	}
	return ""
}

// copyLines reads r line by line into the store until EOF.
func (w *lineWriter) copyLines(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			w.line(line)
		}
		if err != nil {
			return
		}
	}
}

func (w *lineWriter) line(text string) {
	text = strings.TrimRight(text, "\r\n")
	l := LogLine{Time: time.Now().UTC(), Pipeline: w.pipeline, Stream: w.stream, Run: w.run}
	if rec, ok := parseRecord(text); ok {
		// A JSON log record of the child (flowctl run --log-format json):
		// its fields say which component, level and time; nothing is
		// guessed from the text, so a component added by a reload is
		// attributed like the first ones.
		l.Component, l.Level, l.Source, l.Text = rec.component, rec.level, rec.source, rec.text
		if !rec.time.IsZero() {
			l.Time = rec.time.UTC()
		}
	} else {
		l.Component, l.Text = componentOf(text, w.known), text
	}
	w.store.Append(l)
}

// Write takes the process driver's captured stderr lines ("NAME | text"
// with an empty NAME, one line per call).
func (w *lineWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.line(strings.TrimPrefix(l, " | "))
	}
	return len(b), nil
}
