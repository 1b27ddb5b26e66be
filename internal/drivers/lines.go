package drivers

import (
	"bufio"
	"bytes"
	"io"
	"sync"
)

// DefaultTailLines is how many stderr lines Lines keeps when told none.
const DefaultTailLines = 20

// maxLine bounds one captured line; a longer one is cut into pieces.
const maxLine = 1 << 20

// outputMu serialises the lines of every task of every driver, so two
// tasks writing to the same Output never interleave within a line.
var outputMu sync.Mutex

// Lines captures a task's output streams the same way for every driver:
// each line goes to the output with the task's name as prefix
// ("name | line"), and the last stderr lines are kept for Inspect's Tail.
// Its methods are safe for concurrent use.
type Lines struct {
	name string
	out  io.Writer // nil: lines are only kept as the tail
	max  int

	mu   sync.Mutex
	tail []string
}

// NewLines returns a capture for task name writing to out (nil discards)
// and keeping the last tailLines stderr lines (≤ 0: DefaultTailLines).
func NewLines(name string, out io.Writer, tailLines int) *Lines {
	if tailLines <= 0 {
		tailLines = DefaultTailLines
	}
	return &Lines{name: name, out: out, max: tailLines}
}

// Copy reads r line by line until it ends and emits each line; stderr
// lines also go to the tail. A final line without a newline is emitted too.
func (l *Lines) Copy(r io.Reader, stderr bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		line = append(line, chunk...)
		if err != nil {
			if len(line) > 0 {
				l.emit(line, stderr)
			}
			return
		}
		if isPrefix && len(line) < maxLine {
			continue
		}
		l.emit(line, stderr)
		line = line[:0]
	}
}

// Tail returns a copy of the last stderr lines, oldest first.
func (l *Lines) Tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tail...)
}

func (l *Lines) emit(line []byte, stderr bool) {
	line = bytes.TrimRight(line, "\r")
	if stderr {
		l.mu.Lock()
		l.tail = append(l.tail, string(line))
		if len(l.tail) > l.max {
			l.tail = l.tail[len(l.tail)-l.max:]
		}
		l.mu.Unlock()
	}
	if l.out == nil {
		return
	}
	buf := make([]byte, 0, len(l.name)+len(line)+4)
	buf = append(buf, l.name...)
	buf = append(buf, " | "...)
	buf = append(buf, line...)
	buf = append(buf, '\n')
	outputMu.Lock()
	l.out.Write(buf)
	outputMu.Unlock()
}
