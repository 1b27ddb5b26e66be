package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

// How flowctl drives a flowctl.v1 ProcessorService (docs/protocols-v1.md,
// "Processors", says the same for users).
//
// One long-lived Process stream per worker (parallelism), opened when the
// incarnation connects and half-closed only when it is stopped, as the
// earlier flowctl did: the earlier Go SDK answers every input from its own
// goroutine and returns from its handler at end of input without waiting
// for them, so a stream half-closed after each batch loses what is still
// in flight.
//
// flowctl.v1 has no sequence numbers and no "done with this input" signal,
// so flowctl keeps a table per stream of the inputs sent and not yet
// answered, in send order, and matches every output the component sends:
//
//  1. id: the oldest unanswered input with the output's id gets it and is
//     answered (SDK components keep the id and answer once or not at all);
//  2. late: an output whose id is that of an input flowctl already
//     settled without an answer (below) is a late answer: it is delivered
//     downstream with a batch still open (or the next one to finish),
//     never dropped, and counted;
//  3. order: any other output goes to the input of the output before it
//     on the stream while that input's batch is open (a split, an output
//     with a new id), else to the oldest unanswered input, which it
//     answers; with nothing in flight it is held like a late answer.
//
// An input no output answered is settled in one of three ways:
//
//   - in order: while every answer on the stream came in send order, an
//     answer settles the unanswered inputs sent before it at once (an
//     in-order component skipped them). The first answer out of order
//     ends this for the component, for good.
//   - quiet: no message crossed the stream either way for the grace:
//     v1GraceFactor times the longest wait for an output (from the
//     stream's previous message to the output; a late answer counts its
//     whole wait) seen in the last one to two v1GapWindow, at least
//     v1GraceFloor (v1OrderedGraceFloor while answers come in order), at
//     most the answer timeout (which it also is before
//     the first output). The component is idle with the input unanswered:
//     it filtered it. Counted "no answer" (and filtered by the engine).
//   - timeout: it was sent v1_answer_timeout ago and an input sent after
//     it has been answered, while the stream never went quiet: it fails
//     with errV1NoAnswer, and the processor's on_error applies (dead
//     letter with the reason by default).
//
// A batch is answered when every input in it is answered or settled. A
// stream that breaks fails every batch with an input not yet answered or
// settled: the whole batch is redelivered to the next incarnation (the
// outputs read for it are discarded, so each arrives downstream once).
// What is at-most-once is an input settled by the quiet rule whose answer
// was still coming when the component died.
const (
	// v1GapWindow is how long one window of the grace estimate spans; the
	// estimate is the longest wait in this window and the last, so one
	// slow answer lengthens the grace for at most two windows.
	v1GapWindow = time.Second
	// v1GraceFactor multiplies the longest recent wait into the grace.
	v1GraceFactor = 4
	// DefaultV1AnswerTimeout is v1_answer_timeout's default.
	DefaultV1AnswerTimeout = 10 * time.Second
	// ConfigV1AnswerTimeout is the config key of a flowctl.v1 processor
	// that sets its answer timeout (a duration such as "30s").
	ConfigV1AnswerTimeout = "v1_answer_timeout"
	// v1SettledMemory bounds how many settled inputs a stream remembers
	// to recognise their late answers (besides forgetting them after
	// twice the answer timeout).
	v1SettledMemory = 1 << 16
)

// Tuning that tests shorten.
var (
	// v1GraceFloor is the shortest grace: scheduling noise on a busy
	// machine must not turn a slow answer into a late one.
	v1GraceFloor = 10 * time.Millisecond
	// v1OrderedGraceFloor is the shortest grace while the component
	// answers in send order. Such a component's skipped inputs are
	// settled by its next answer; the quiet rule is needed only for the
	// inputs at the end of what was sent, so a longer floor costs little,
	// and it keeps a pause of the machine (a GC, a loaded core) from
	// settling inputs whose answers are merely late.
	v1OrderedGraceFloor = 100 * time.Millisecond
	// v1CloseWait is how long Close waits for the component to end its
	// streams after flowctl half-closed them.
	v1CloseWait = 2 * time.Second
)

// errV1NoAnswer is the failure of an input that timed out: the processor
// answered inputs sent after it but not it.
var errV1NoAnswer = errors.New("the flowctl.v1 processor did not answer this event within v1_answer_timeout while it answered events sent after it")

// V1AnswerTimeout returns the answer timeout a flowctl.v1 processor's
// config sets (ConfigV1AnswerTimeout), DefaultV1AnswerTimeout when it sets
// none. The value is a duration ("30s") or a number of seconds.
func V1AnswerTimeout(c *spec.Component) (time.Duration, error) {
	v, ok := c.Config[ConfigV1AnswerTimeout]
	if !ok || v == nil {
		return DefaultV1AnswerTimeout, nil
	}
	var d time.Duration
	var err error
	switch v := v.(type) {
	case string:
		d, err = time.ParseDuration(v)
	case int:
		d = time.Duration(v) * time.Second
	case int64:
		d = time.Duration(v) * time.Second
	case float64:
		d = time.Duration(v * float64(time.Second))
	default:
		err = fmt.Errorf("a %T", v)
	}
	if err == nil && d <= 0 {
		err = errors.New("not positive")
	}
	if err != nil {
		return 0, fmt.Errorf("component %q: config.%s %v: %v — give a positive duration such as \"30s\"", c.Name, ConfigV1AnswerTimeout, v, err)
	}
	return d, nil
}

// v1Shared is what the incarnations of one flowctl.v1 processor share:
// late answers not yet handed over (a conn that breaks leaves them to the
// next), the counters, and the last grace estimate.
type v1Shared struct {
	mu    sync.Mutex
	carry []*flow.Event

	noAnswer, timedOut, late atomic.Int64
	lastGap                  atomic.Int64 // ns; the previous incarnation's estimate
	unordered                atomic.Bool  // an answer once came out of send order
}

func (sh *v1Shared) hold(ev *flow.Event) {
	sh.mu.Lock()
	sh.carry = append(sh.carry, ev)
	sh.mu.Unlock()
}

func (sh *v1Shared) take() []*flow.Event {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.carry
	sh.carry = nil
	return c
}

func (sh *v1Shared) held() int64 {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return int64(len(sh.carry))
}

// v1Shared returns the state shared by the incarnations of the flowctl.v1
// processor name, making it on first use.
func (rt *Runtime) v1Shared(name string) *v1Shared {
	sh, _ := rt.v1procs.LoadOrStore(name, &v1Shared{})
	return sh.(*v1Shared)
}

// v1SharedIf returns it only if it exists (the component connected as a
// flowctl.v1 processor).
func (rt *Runtime) v1SharedIf(name string) *v1Shared {
	sh, ok := rt.v1procs.Load(name)
	if !ok {
		return nil
	}
	return sh.(*v1Shared)
}

// v1ProcessorConn is a ProcessorConn over flowctl.v1 ProcessorService:
// one long-lived Process stream per worker.
type v1ProcessorConn struct {
	*v1Base
	client  flowctlv1.ProcessorServiceClient
	shared  *v1Shared
	timeout time.Duration
	streams []*v1Stream
	closing sync.Once
}

func newV1ProcessorConn(base *v1Base, client flowctlv1.ProcessorServiceClient, shared *v1Shared, timeout time.Duration, workers int) (*v1ProcessorConn, error) {
	p := &v1ProcessorConn{v1Base: base, client: client, shared: shared, timeout: timeout}
	for range max(workers, 1) {
		s, err := p.openStream()
		if err != nil {
			return nil, err
		}
		p.streams = append(p.streams, s)
	}
	return p, nil
}

// v1Call is one batch in flight on a stream.
type v1Call struct {
	outs  [][]*flow.Event
	fails map[int]error
	left  int  // inputs neither answered nor settled
	open  bool // still waited for
	err   error
	done  chan struct{}
}

// v1Slot is one input of a batch in flight.
type v1Slot struct {
	call *v1Call
	idx  int
	id   string
	seq  uint64 // send order on the stream
	sent time.Time
	done bool // answered or settled
}

// v1Settled remembers an input settled without an answer, to recognise a
// late answer for it.
type v1Settled struct {
	id         string
	quietSince time.Time // when the stream last saw a message before settling
	at         time.Time
}

// v1Stream is one long-lived Process stream and its table of inputs in
// flight.
type v1Stream struct {
	p      *v1ProcessorConn
	stream flowctlv1.ProcessorService_ProcessClient
	cancel context.CancelFunc

	sendMu     sync.Mutex // serialises Send and CloseSend
	sendClosed bool

	mu           sync.Mutex
	err          error // why the stream ended; nil while it lives
	calls        int   // calls open on it
	seq          uint64
	pending      map[string][]*v1Slot // unanswered inputs by id, in send order
	queue        []*v1Slot            // unanswered inputs in send order (done ones skipped)
	head         int
	unanswered   int
	prev         *v1Slot // the input the previous output went to
	lastActivity time.Time
	maxAnswered  uint64 // highest seq answered
	ordered      bool   // every answer so far came in send order
	settled      map[string]v1Settled
	settledOrder []v1Settled
	gaps         gapWindow
	wakeAt       time.Time // when the settle loop wakes next (zero: only when kicked)

	kick chan struct{} // wakes the settle loop (cap 1)
	done chan struct{} // closed when the receive loop ended
}

func (p *v1ProcessorConn) openStream() (*v1Stream, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	stream, err := p.client.Process(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open a flowctl.v1 Process stream: %w", err)
	}
	s := &v1Stream{
		p: p, stream: stream, cancel: cancel,
		pending: map[string][]*v1Slot{}, settled: map[string]v1Settled{},
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		ordered: !p.shared.unordered.Load(),
	}
	if g := p.shared.lastGap.Load(); g > 0 {
		s.gaps.seed(time.Now(), time.Duration(g))
	}
	go s.recvLoop()
	go s.settleLoop()
	return s, nil
}

// pick returns the live stream with the fewest calls open, nil when every
// stream is broken.
func (p *v1ProcessorConn) pick() *v1Stream {
	var best *v1Stream
	bestCalls := 0
	for _, s := range p.streams {
		s.mu.Lock()
		calls, broken := s.calls, s.err != nil
		s.mu.Unlock()
		if broken {
			continue
		}
		if best == nil || calls < bestCalls {
			best, bestCalls = s, calls
		}
	}
	return best
}

// Process implements ProcessorConn: it sends batch on the stream with the
// fewest batches in flight and waits until every input of it was
// answered or settled (see the comment at the top of this file).
func (p *v1ProcessorConn) Process(ctx context.Context, batch []*flow.Event) (Result, error) {
	if p.closed.Load() {
		return Result{}, fmt.Errorf("process: %w: %w", ErrNotSent, ErrClosed)
	}
	if len(batch) == 0 {
		return Result{Outputs: [][]*flow.Event{}}, nil
	}
	s := p.pick()
	if s == nil {
		return Result{}, fmt.Errorf("%w: %w", ErrNotSent, p.brokenErr(ctx, "flowctl.v1 Process stream", p.streamErr()))
	}
	c, err := s.start(batch)
	if err != nil {
		return Result{}, err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		s.abandon(c)
		return Result{}, p.brokenErr(ctx, "flowctl.v1 Process stream", ctx.Err())
	}
	if c.err != nil {
		return Result{}, p.brokenErr(ctx, "flowctl.v1 Process stream", c.err)
	}
	res := Result{Outputs: c.outs, Failures: c.fails}
	p.handOverLate(&res)
	return res, nil
}

// streamErr is why the first broken stream broke.
func (p *v1ProcessorConn) streamErr() error {
	for _, s := range p.streams {
		s.mu.Lock()
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return ErrClosed
}

// handOverLate adds the late answers held so far to res, on an input that
// did not fail (the engine ignores a failed input's outputs); they then
// count against this batch's source batch.
func (p *v1ProcessorConn) handOverLate(res *Result) {
	for i := range res.Outputs {
		if _, failed := res.Failures[i]; failed {
			continue
		}
		if late := p.shared.take(); len(late) > 0 {
			res.Outputs[i] = append(res.Outputs[i], late...)
		}
		return
	}
}

// start registers batch's inputs on s and sends them.
func (s *v1Stream) start(batch []*flow.Event) (*v1Call, error) {
	c := &v1Call{outs: make([][]*flow.Event, len(batch)), left: len(batch), open: true, done: make(chan struct{})}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	now := time.Now()
	s.mu.Lock()
	if s.err != nil || s.sendClosed {
		err := s.err
		s.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return nil, fmt.Errorf("%w: flowctl.v1 Process stream: %w", ErrNotSent, err)
	}
	s.calls++
	for i, ev := range batch {
		s.seq++
		sl := &v1Slot{call: c, idx: i, id: ev.ID, seq: s.seq, sent: now}
		s.pending[ev.ID] = append(s.pending[ev.ID], sl)
		s.queue = append(s.queue, sl)
	}
	s.unanswered += len(batch)
	s.lastActivity = now
	s.mu.Unlock()
	// Registered before sending: an answer may come before the last send.
	for _, ev := range batch {
		if err := s.stream.Send(eventToV1(ev)); err != nil {
			if !errors.Is(err, io.EOF) {
				s.fail(fmt.Errorf("send to the processor: %w", err))
			}
			// io.EOF: the stream ended; the receive loop says why and
			// fails the call.
			break
		}
	}
	s.mu.Lock()
	s.lastActivity = time.Now()
	s.kickLocked()
	s.mu.Unlock()
	return c, nil
}

// kickLocked wakes the settle loop to compute its next wake-up again.
func (s *v1Stream) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// recvLoop matches every output to an input until the stream ends.
func (s *v1Stream) recvLoop() {
	defer close(s.done)
	for {
		m, err := s.stream.Recv()
		if err != nil {
			if endedCleanly(err) {
				err = errors.New("the processor ended its Process stream while flowctl had not closed its side")
			}
			s.fail(err)
			return
		}
		s.onOutput(eventFromV1(m), time.Now())
	}
}

// onOutput applies the matching rules to one output.
func (s *v1Stream) onOutput(out *flow.Event, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unanswered > 0 {
		s.gaps.observe(now, now.Sub(s.lastActivity))
	}
	s.lastActivity = now
	if s.unanswered > 0 && (s.wakeAt.IsZero() || now.Add(s.grace()).Before(s.wakeAt)) {
		// The grace shrank below what the settle loop sleeps for.
		s.kickLocked()
	}
	// 1. id
	if sl := s.popPending(out.ID); sl != nil {
		s.answerLocked(sl, out)
		return
	}
	// 2. late
	if st, ok := s.settled[out.ID]; ok {
		s.gaps.observe(now, now.Sub(st.quietSince))
		s.unorderedLocked()
		s.p.shared.late.Add(1)
		s.p.log.Debug("late answer from the flowctl.v1 processor: delivered with a later batch", "id", out.ID,
			"after", now.Sub(st.at).Round(time.Millisecond))
		if s.prev != nil && s.prev.call.open {
			s.addLocked(s.prev.call, s.prev.idx, out)
		} else if sl := s.oldestLocked(); sl != nil {
			s.addLocked(sl.call, sl.idx, out)
		} else {
			s.p.shared.hold(out)
		}
		return
	}
	// 3. order
	if s.prev != nil && s.prev.call.open {
		s.addLocked(s.prev.call, s.prev.idx, out)
		return
	}
	if sl := s.oldestLocked(); sl != nil {
		s.removePending(sl)
		s.answerLocked(sl, out)
		return
	}
	s.p.shared.late.Add(1)
	s.p.shared.hold(out)
}

// answerLocked records out as sl's answer. While the component answers
// in send order, the inputs sent before sl and not answered are settled
// at once: it skipped them.
func (s *v1Stream) answerLocked(sl *v1Slot, out *flow.Event) {
	s.addLocked(sl.call, sl.idx, out)
	s.prev = sl
	if sl.seq < s.maxAnswered {
		s.unorderedLocked()
	}
	s.maxAnswered = max(s.maxAnswered, sl.seq)
	s.doneLocked(sl)
	if s.ordered {
		n := 0
		for o := s.oldestLocked(); o != nil && o.seq < sl.seq; o = s.oldestLocked() {
			s.settleLocked(o, s.lastActivity)
			n++
		}
		s.p.shared.noAnswer.Add(int64(n))
	}
}

// unorderedLocked records that the component answers out of send order.
func (s *v1Stream) unorderedLocked() {
	if s.ordered {
		s.ordered = false
		s.p.shared.unordered.Store(true)
	}
}

// settleLocked settles sl without an answer.
func (s *v1Stream) settleLocked(sl *v1Slot, now time.Time) {
	s.removePending(sl)
	s.rememberLocked(sl.id, s.lastActivity, now)
	s.doneLocked(sl)
}

// addLocked adds out to input idx of c, unless that input failed.
func (s *v1Stream) addLocked(c *v1Call, idx int, out *flow.Event) {
	if _, failed := c.fails[idx]; failed {
		// A timed-out input's outputs would be ignored: hand it over with
		// the next batch instead.
		s.p.shared.hold(out)
		return
	}
	c.outs[idx] = append(c.outs[idx], out)
}

// doneLocked marks sl answered or settled and finishes its call when it
// was the last.
func (s *v1Stream) doneLocked(sl *v1Slot) {
	if sl.done {
		return
	}
	sl.done = true
	s.unanswered--
	c := sl.call
	c.left--
	if c.left == 0 && c.open {
		c.open = false
		s.calls--
		close(c.done)
	}
}

// popPending removes and returns the oldest unanswered input with id.
func (s *v1Stream) popPending(id string) *v1Slot {
	l := s.pending[id]
	for len(l) > 0 {
		sl := l[0]
		l = l[1:]
		if !sl.done {
			if len(l) == 0 {
				delete(s.pending, id)
			} else {
				s.pending[id] = l
			}
			return sl
		}
	}
	delete(s.pending, id)
	return nil
}

// removePending takes sl out of the by-id table.
func (s *v1Stream) removePending(sl *v1Slot) {
	l := s.pending[sl.id]
	for i, x := range l {
		if x == sl {
			l = append(l[:i:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(s.pending, sl.id)
	} else {
		s.pending[sl.id] = l
	}
}

// oldestLocked returns the oldest unanswered input, nil when none.
func (s *v1Stream) oldestLocked() *v1Slot {
	for s.head < len(s.queue) && s.queue[s.head].done {
		s.queue[s.head] = nil
		s.head++
	}
	if s.head > 1024 && s.head > len(s.queue)/2 {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
	if s.head == len(s.queue) {
		return nil
	}
	return s.queue[s.head]
}

// grace is the quiet time after which unanswered inputs are settled.
func (s *v1Stream) grace() time.Duration {
	g, ok := s.gaps.max(time.Now())
	if !ok {
		return s.p.timeout
	}
	floor := v1GraceFloor
	if s.ordered {
		floor = v1OrderedGraceFloor
	}
	return min(max(g*v1GraceFactor, floor), s.p.timeout)
}

// nextDueLocked is when settleDue has something to do next; zero when no
// input is unanswered.
func (s *v1Stream) nextDueLocked() time.Time {
	sl := s.oldestLocked()
	if sl == nil {
		return time.Time{}
	}
	due := s.lastActivity.Add(s.grace())
	if sl.seq < s.maxAnswered {
		due = minTime(due, sl.sent.Add(s.p.timeout))
	}
	return due
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// settleLoop settles unanswered inputs by the quiet and timeout rules.
func (s *v1Stream) settleLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return
		}
		var timer <-chan time.Time
		s.wakeAt = s.nextDueLocked()
		if !s.wakeAt.IsZero() {
			t.Reset(max(time.Until(s.wakeAt), time.Millisecond))
			timer = t.C
		}
		s.mu.Unlock()
		select {
		case <-s.kick:
		case <-timer:
			s.settleDue(time.Now())
		case <-s.done:
			return
		}
		t.Stop()
	}
}

// settleDue settles what is due at now.
func (s *v1Stream) settleDue(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.forgetSettledLocked(now)
	// timeout: unanswered for the answer timeout while a later input was
	// answered.
	for sl := s.oldestLocked(); sl != nil && sl.seq < s.maxAnswered && now.Sub(sl.sent) >= s.p.timeout; sl = s.oldestLocked() {
		if sl.call.fails == nil {
			sl.call.fails = map[int]error{}
		}
		sl.call.fails[sl.idx] = fmt.Errorf("%w (%s)", errV1NoAnswer, s.p.timeout)
		s.p.shared.timedOut.Add(1)
		s.settleLocked(sl, now)
	}
	// quiet: nothing crossed the stream for the grace.
	n := 0
	if now.Sub(s.lastActivity) >= s.grace() {
		for sl := s.oldestLocked(); sl != nil; sl = s.oldestLocked() {
			s.settleLocked(sl, now)
			n++
		}
	}
	s.p.shared.noAnswer.Add(int64(n))
	if g, ok := s.gaps.max(now); ok {
		s.p.shared.lastGap.Store(int64(g))
	}
}

// rememberLocked notes a settled input's id for its late answer.
func (s *v1Stream) rememberLocked(id string, quietSince, now time.Time) {
	st := v1Settled{id: id, quietSince: quietSince, at: now}
	s.settled[id] = st
	s.settledOrder = append(s.settledOrder, st)
}

// forgetSettledLocked forgets settled inputs older than twice the answer
// timeout, or beyond v1SettledMemory.
func (s *v1Stream) forgetSettledLocked(now time.Time) {
	k := 0
	for k < len(s.settledOrder) && (len(s.settledOrder)-k > v1SettledMemory || now.Sub(s.settledOrder[k].at) > 2*s.p.timeout) {
		st := s.settledOrder[k]
		if cur, ok := s.settled[st.id]; ok && cur.at.Equal(st.at) {
			delete(s.settled, st.id)
		}
		k++
	}
	if k > 0 {
		n := copy(s.settledOrder, s.settledOrder[k:])
		clear(s.settledOrder[n:])
		s.settledOrder = s.settledOrder[:n]
	}
}

// fail ends the stream: every open call fails with err (its batch is
// redelivered).
func (s *v1Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	err = s.err
	for _, sl := range s.queue[s.head:] {
		if sl == nil || sl.done {
			continue
		}
		sl.done = true
		c := sl.call
		if c.open {
			c.open = false
			c.err = err
			s.calls--
			close(c.done)
		}
	}
	s.queue, s.head, s.unanswered = nil, 0, 0
	clear(s.pending)
	s.mu.Unlock()
	s.cancel()
}

// abandon forgets c, whose caller gave up waiting (its context ended).
func (s *v1Stream) abandon(c *v1Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.open {
		return
	}
	c.open = false
	s.calls--
	for _, sl := range s.queue[s.head:] {
		if sl != nil && sl.call == c && !sl.done {
			sl.done = true
			s.unanswered--
			s.removePending(sl)
		}
	}
}

// closeSend half-closes the stream once: the component sees the end of
// input.
func (s *v1Stream) closeSend() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.sendClosed {
		s.sendClosed = true
		_ = s.stream.CloseSend()
	}
}

// Close implements ProcessorConn: it half-closes every stream, gives the
// component up to v1CloseWait to end them (an answer arriving meanwhile is
// held: delivered by a next incarnation, if any, else counted undelivered),
// then ends the connection. Batches still in flight fail with ErrClosed.
func (p *v1ProcessorConn) Close() error {
	first := false
	p.closing.Do(func() { first = true })
	if !first {
		return nil
	}
	p.closed.Store(true) // Process refuses new batches
	deadline := time.NewTimer(v1CloseWait)
	defer deadline.Stop()
	for _, s := range p.streams {
		s.closeSend()
	}
	for _, s := range p.streams {
		select {
		case <-s.done:
		case <-deadline.C:
		}
	}
	for _, s := range p.streams {
		s.fail(fmt.Errorf("flowctl.v1 Process stream: %w", ErrClosed))
	}
	if n := p.shared.held(); n > 0 {
		p.log.Debug("late answers of the flowctl.v1 processor are held for the next batch", "events", n)
	}
	return p.close()
}

// gapWindow keeps the longest wait for an output over the last one to
// two windows of v1GapWindow.
type gapWindow struct {
	cur, prev time.Duration
	start     time.Time // of the current window
	seen      bool
}

func (g *gapWindow) roll(now time.Time) {
	switch el := now.Sub(g.start); {
	case el >= 2*v1GapWindow:
		g.prev, g.cur, g.start = 0, 0, now
	case el >= v1GapWindow:
		g.prev, g.cur, g.start = g.cur, 0, g.start.Add(v1GapWindow)
	}
}

func (g *gapWindow) observe(now time.Time, d time.Duration) {
	g.roll(now)
	g.seen = true
	g.cur = max(g.cur, d)
}

// seed starts the estimate from a previous incarnation's.
func (g *gapWindow) seed(now time.Time, d time.Duration) {
	g.start, g.cur, g.seen = now, d, true
}

// max is the longest wait in the last one to two windows; false before
// any output was seen. After two quiet windows it is zero (the grace is
// then its floor).
func (g *gapWindow) max(now time.Time) (time.Duration, bool) {
	g.roll(now)
	return max(g.cur, g.prev), g.seen
}

// v1ProcStats is what a flowctl.v1 processor's counters say, for Stats.
func (sh *v1Shared) stats() (noAnswer, timedOut, late, held int64) {
	return sh.noAnswer.Load(), sh.timedOut.Load(), sh.late.Load(), sh.held()
}

// v1Workers is how many Process streams an incarnation of c opens.
func v1Workers(c *spec.Component) int { return max(c.Parallelism, 1) }

var _ ProcessorConn = (*v1ProcessorConn)(nil)
