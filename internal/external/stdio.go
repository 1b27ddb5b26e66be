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
	"github.com/flowctl/flowctl/internal/spec"
)

// StdioWindow is how many input events may be in flight to a stdio
// component (written, not yet answered by done or error). Process blocks
// while the window is full.
const StdioWindow = 1024

// DefaultAnswerTimeout is how long a stdio or http component may take to
// answer a batch before flowctl treats it as hung and restarts it. A
// component's `config.answer_timeout` (a duration) overrides it.
const DefaultAnswerTimeout = 30 * time.Second

// maxLine bounds one line a stdio component writes.
const maxLine = 16 << 20

// stdioProtocol is `protocol: stdio`: JSON lines on the child's stdin and
// stdout (docs/protocols.md).
type stdioProtocol struct{}

// Stdio is the stdio protocol.
var Stdio Protocol = stdioProtocol{}

func init() { RegisterProtocol(Stdio) }

func (stdioProtocol) Name() string { return "stdio" }

func (stdioProtocol) Launch(*Runtime, *spec.Component) (Launch, error) {
	return Launch{Stdio: true}, nil
}

// Ready connects at once: the pipes are open as soon as the child started.
func (stdioProtocol) Ready(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error) {
	if inst.Stdin == nil || inst.Stdout == nil {
		return Conns{}, errors.New("stdio: the process was started without stdio pipes")
	}
	timeout, err := answerTimeout(inst.Component)
	if err != nil {
		return Conns{}, err
	}
	switch inst.Component.Role {
	case flow.RoleSource:
		return Conns{Source: newStdioSource(inst.Stdin, inst.Stdout, inst.Logger)}, nil
	case flow.RoleSink:
		return Conns{Sink: stdioSink{NewStdioConn(inst.Stdin, inst.Stdout, timeout, inst.Logger)}}, nil
	default:
		return Conns{Processor: NewStdioConn(inst.Stdin, inst.Stdout, timeout, inst.Logger)}, nil
	}
}

// answerTimeout reads config.answer_timeout.
func answerTimeout(c *spec.Component) (time.Duration, error) {
	v, ok := c.Config["answer_timeout"]
	if !ok {
		return DefaultAnswerTimeout, nil
	}
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("component %q: config.answer_timeout must be a duration such as \"30s\"", c.Name)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("component %q: config.answer_timeout %q is not a positive duration such as \"30s\"", c.Name, s)
	}
	return d, nil
}

// StdioConn is a ProcessorConn over a stdio component's pipes. It is
// exported for the conformance command, which drives a component alone.
type StdioConn struct {
	w       io.WriteCloser
	r       io.Reader
	timeout time.Duration
	log     *slog.Logger

	// window counts the input events that may still be written; acquire
	// serialises batches waiting for room, in turn.
	window  eventWindow
	acquire sync.Mutex

	wmu  sync.Mutex // guards writes to w and wbuf
	wbuf []byte

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]slot
	err     error         // why the conn broke; set once
	broken  chan struct{} // closed when err is set
	closing bool

	readDone chan struct{}
}

// slot is one input event in flight: its call and its index there.
type slot struct {
	c *stdioCall
	i int
}

// stdioCall is one batch in flight.
type stdioCall struct {
	in        []*flow.Event
	res       Result
	remaining int
	done      chan struct{}
}

// NewStdioConn starts reading r (the child's stdout) and returns a conn
// writing to w (its stdin). A batch not fully answered within timeout
// breaks the conn with ErrHung.
func NewStdioConn(w io.WriteCloser, r io.Reader, timeout time.Duration, log *slog.Logger) *StdioConn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if timeout <= 0 {
		timeout = DefaultAnswerTimeout
	}
	c := &StdioConn{
		w: w, r: r, timeout: timeout, log: log,
		window:   eventWindow{free: StdioWindow, wake: make(chan struct{})},
		pending:  map[uint64]slot{},
		broken:   make(chan struct{}),
		readDone: make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// InFlight returns how many input events were written and not yet
// answered.
func (c *StdioConn) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Broken returns a channel closed once the conn broke (Err says why).
func (c *StdioConn) Broken() <-chan struct{} { return c.broken }

// Err returns why the conn broke, nil while it works.
func (c *StdioConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *StdioConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.broken)
	}
	c.mu.Unlock()
}

// Process implements ProcessorConn.
func (c *StdioConn) Process(ctx context.Context, batch []*flow.Event) (Result, error) {
	if len(batch) == 0 {
		return Result{Outputs: [][]*flow.Event{}}, nil
	}
	n := min(len(batch), StdioWindow)
	// Take the window for the batch (capped at the window's size: a larger
	// batch goes in one piece and briefly exceeds it).
	c.acquire.Lock()
	werr := c.window.take(ctx, n, c.broken)
	c.acquire.Unlock()
	switch {
	case errors.Is(werr, errWindowBroken):
		return Result{}, fmt.Errorf("%w: %w", ErrNotSent, c.Err())
	case werr != nil:
		return Result{}, werr
	}
	defer c.window.release(n)

	call := &stdioCall{
		in: batch, remaining: len(batch), done: make(chan struct{}),
		res: Result{Outputs: make([][]*flow.Event, len(batch))},
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return Result{}, fmt.Errorf("%w: %w", ErrNotSent, c.err)
	}
	first := c.seq + 1
	for i := range batch {
		c.seq++
		c.pending[c.seq] = slot{c: call, i: i}
	}
	c.mu.Unlock()

	c.wmu.Lock()
	b := c.wbuf[:0]
	for i, ev := range batch {
		b = append(b, `{"seq":`...)
		b = appendUint(b, first+uint64(i))
		b = append(b, `,"event":`...)
		b = appendEvent(b, ev)
		b = append(b, '}', '\n')
	}
	_, err := c.w.Write(b)
	if cap(b) <= 1<<20 {
		c.wbuf = b
	}
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("stdio: write to the component's stdin: %w", err))
	}

	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-call.done:
		return call.res, nil
	case <-c.broken:
		c.forget(first, len(batch))
		return Result{}, c.Err()
	case <-t.C:
		c.fail(fmt.Errorf("stdio: %d of %d events not answered within %v: %w", c.remainingOf(call), len(batch), c.timeout, ErrHung))
		c.forget(first, len(batch))
		return Result{}, c.Err()
	case <-ctx.Done():
		// The component may still answer; it cannot be told to forget, so
		// the conn is no longer in step: break it.
		c.fail(fmt.Errorf("stdio: batch abandoned: %w", ctx.Err()))
		c.forget(first, len(batch))
		return Result{}, ctx.Err()
	}
}

// eventWindow counts the input events a StdioConn may still write. It
// used to be a channel of one token per event: a batch of 128 took 128
// sends, each a select, and gave them back one by one.
type eventWindow struct {
	mu      sync.Mutex
	free    int
	wake    chan struct{} // closed (and replaced) by release when waiting
	waiting bool
}

// errWindowBroken is take's error when broken closed first.
var errWindowBroken = errors.New("stdio: the conn broke while waiting for room")

// take blocks until n events fit, then takes them, all at once (a batch
// never holds part of the window while it waits). It gives up with
// errWindowBroken when broken is closed, or ctx's error.
func (w *eventWindow) take(ctx context.Context, n int, broken <-chan struct{}) error {
	for {
		w.mu.Lock()
		if w.free >= n {
			w.free -= n
			w.mu.Unlock()
			return nil
		}
		w.waiting = true
		wake := w.wake
		w.mu.Unlock()
		select {
		case <-wake:
		case <-broken:
			return errWindowBroken
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives n events back and wakes a taker waiting for room.
func (w *eventWindow) release(n int) {
	w.mu.Lock()
	w.free += n
	if w.waiting {
		close(w.wake)
		w.wake = make(chan struct{})
		w.waiting = false
	}
	w.mu.Unlock()
}

func (c *StdioConn) remainingOf(call *stdioCall) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return call.remaining
}

func (c *StdioConn) forget(first uint64, n int) {
	c.mu.Lock()
	for s := first; s < first+uint64(n); s++ {
		delete(c.pending, s)
	}
	c.mu.Unlock()
}

// stdioLine is one line a stdio component writes.
type stdioLine struct {
	Seq       *uint64         `json:"seq"`
	Event     *wireEvent      `json:"event"`
	Data      json.RawMessage `json:"data"`
	Done      bool            `json:"done"`
	Error     *string         `json:"error"`
	Permanent bool            `json:"permanent"`
}

func (c *StdioConn) readLoop() {
	defer close(c.readDone)
	br := bufio.NewReaderSize(c.r, 64<<10)
	warned := 0
	for {
		line, err := readLine(br)
		if len(bytes.TrimSpace(line)) > 0 {
			if perr := c.handle(line); perr != nil {
				if warned < 5 {
					c.log.Warn("stdio: ignoring a line the component wrote on stdout (logs belong on stderr)",
						"err", perr, "line", truncate(line, 200))
				}
				warned++
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("stdio: the component closed its stdout")
			} else {
				err = fmt.Errorf("stdio: read the component's stdout: %w", err)
			}
			c.mu.Lock()
			if c.closing {
				err = ErrClosed
			}
			c.mu.Unlock()
			c.fail(err)
			return
		}
	}
}

// readLine reads one line of any length up to maxLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil || !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) && len(long) < maxLine {
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("a line longer than %d bytes", maxLine)
	}
	return long, err
}

func truncate(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// handle applies one line. An error means the line was not understood.
func (c *StdioConn) handle(line []byte) error {
	var l stdioLine
	if err := parseStdioLine(line, &l); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if l.Seq == nil {
		return errors.New(`no "seq"`)
	}
	c.mu.Lock()
	s, ok := c.pending[*l.Seq]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("seq %d is not an input in flight (answered twice?)", *l.Seq)
	}
	call, in := s.c, s.c.in[s.i]
	switch {
	case l.Event != nil || l.Data != nil:
		w := l.Event
		if w == nil {
			w = &wireEvent{Data: l.Data}
		}
		ev, err := w.toEvent(in)
		if err != nil {
			return err
		}
		call.res.Outputs[s.i] = append(call.res.Outputs[s.i], ev)
		if !l.Done {
			return nil
		}
	case l.Error != nil:
		err := errors.New(*l.Error)
		if l.Permanent {
			err = fmt.Errorf("%w: %w", ErrPermanent, err)
		}
		if call.res.Failures == nil {
			call.res.Failures = map[int]error{}
		}
		call.res.Failures[s.i] = err
		call.res.Outputs[s.i] = nil
	case l.Done:
	default:
		return errors.New(`a line needs one of "event", "data", "done" or "error"`)
	}
	c.mu.Lock()
	delete(c.pending, *l.Seq)
	call.remaining--
	last := call.remaining == 0
	c.mu.Unlock()
	if last {
		close(call.done)
	}
	return nil
}

// Close closes the child's stdin (its end of input). Batches in flight
// fail with ErrClosed.
func (c *StdioConn) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.w.Close()
	c.wmu.Unlock()
	c.fail(ErrClosed)
	return err
}

// stdioSink is a SinkConn over a StdioConn: outputs are ignored.
type stdioSink struct{ c *StdioConn }

func (s stdioSink) Write(ctx context.Context, batch []*flow.Event) (map[int]error, error) {
	res, err := s.c.Process(ctx, batch)
	return res.Failures, err
}

func (s stdioSink) Close() error { return s.c.Close() }

var (
	_ ProcessorConn = (*StdioConn)(nil)
	_ SinkConn      = stdioSink{}
)
