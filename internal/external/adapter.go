package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// Processor is an external processor as the engine sees it: a
// flow.Processor (one event at a time) and a flow.BatchProcessor (a batch
// at once, which the engine prefers). A batch in flight when the component
// dies is sent again to the next incarnation; the call blocks across the
// restart.
type Processor struct{ s *Supervisor }

// NewProcessor returns the adapter of a supervised processor.
func NewProcessor(s *Supervisor) *Processor { return &Processor{s: s} }

// Supervisor returns the supervisor behind the adapter.
func (p *Processor) Supervisor() *Supervisor { return p.s }

// Open starts the component and waits until it is ready.
func (p *Processor) Open(ctx context.Context) error { return p.s.Start(ctx) }

// Close stops the component (end of input, SIGTERM, stop_grace, SIGKILL).
func (p *Processor) Close(ctx context.Context) error { return p.s.Stop(ctx) }

// ProcessBatch implements flow.BatchProcessor: it returns, per input
// index, the outputs and the failures the component reported. An error
// means the component is gone for good (crash loop, restart policy) or ctx
// ended.
func (p *Processor) ProcessBatch(ctx context.Context, in []*flow.Event) ([][]*flow.Event, map[int]error, error) {
	// One delivery across attempts: a redelivery keeps its first seq and
	// says redelivered, so the component can tell it may have seen it.
	ctx = WithDelivery(ctx)
	sent := false // a previous attempt reached an incarnation that died
	for {
		inc, err := p.s.acquire(ctx)
		if err != nil {
			return nil, nil, err
		}
		if sent {
			p.s.redelivered(len(in))
		}
		inc.inflight.Add(1)
		res, err := inc.conns.Processor.Process(ctx, in)
		inc.inflight.Add(-1)
		if err == nil {
			return res.Outputs, res.Failures, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		sent = !errors.Is(err, ErrNotSent)
		p.s.lost(inc, err)
	}
}

// Process implements flow.Processor for engines that call one event at a
// time.
func (p *Processor) Process(ctx context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	outs, fails, err := p.ProcessBatch(ctx, []*flow.Event{in})
	if err != nil {
		return out, err
	}
	if ferr := fails[0]; ferr != nil {
		return out, ferr
	}
	if len(outs) > 0 {
		out = append(out, outs[0]...)
	}
	return out, nil
}

// Sink is an external sink as the engine sees it.
type Sink struct{ s *Supervisor }

// NewSink returns the adapter of a supervised sink.
func NewSink(s *Supervisor) *Sink { return &Sink{s: s} }

// Supervisor returns the supervisor behind the adapter.
func (k *Sink) Supervisor() *Supervisor { return k.s }

// Open starts the component and waits until it is ready.
func (k *Sink) Open(ctx context.Context) error { return k.s.Start(ctx) }

// Close stops the component.
func (k *Sink) Close(ctx context.Context) error { return k.s.Stop(ctx) }

// Write implements flow.Sink; a batch in flight when the component dies is
// written again by the next incarnation.
func (k *Sink) Write(ctx context.Context, batch []*flow.Event) error {
	ctx = WithDelivery(ctx) // one delivery across attempts, as in ProcessBatch
	sent := false           // a previous attempt reached an incarnation that died
	for {
		inc, err := k.s.acquire(ctx)
		if err != nil {
			return err
		}
		if sent {
			k.s.redelivered(len(batch))
		}
		inc.inflight.Add(1)
		fails, err := inc.conns.Sink.Write(ctx, batch)
		inc.inflight.Add(-1)
		if err == nil {
			if len(fails) > 0 {
				return &flow.BatchError{Failed: fails}
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sent = !errors.Is(err, ErrNotSent)
		k.s.lost(inc, err)
	}
}

// Source is an external source as the engine sees it. Each batch it
// receives is emitted, and acknowledged to the incarnation that sent it
// once the pipeline is done with it.
type Source struct{ s *Supervisor }

// NewSource returns the adapter of a supervised source.
func NewSource(s *Supervisor) *Source { return &Source{s: s} }

// Supervisor returns the supervisor behind the adapter.
func (r *Source) Supervisor() *Supervisor { return r.s }

// Open starts the component and waits until it is ready.
func (r *Source) Open(ctx context.Context) error { return r.s.Start(ctx) }

// Close stops the component.
func (r *Source) Close(ctx context.Context) error { return r.s.Stop(ctx) }

// Run implements flow.Source: it returns nil when the source is exhausted
// (it ended its stream, or exited with status 0) or ctx ends.
func (r *Source) Run(ctx context.Context, out flow.Emitter) error {
	name := r.s.c.Name
	var n uint64
	var inc *incarnation
	for {
		if inc == nil {
			var err error
			if inc, err = r.s.acquire(ctx); err != nil {
				if ctx.Err() != nil || errors.Is(err, errExhausted) {
					return nil
				}
				return err
			}
		}
		seq, batch, err := inc.conns.Source.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) && r.exhausted(inc) {
				return nil
			}
			r.s.lost(inc, err)
			inc = nil
			continue
		}
		for _, ev := range batch {
			n++
			if ev.ID == "" {
				ev.ID = name + ":" + strconv.FormatUint(n, 10)
			}
			if ev.Type == "" {
				ev.Type = name
			}
			if ev.Source == "" {
				ev.Source = name
			}
		}
		conn := inc.conns.Source
		done := func(err error) {
			if err == nil {
				if aerr := conn.Ack(context.Background(), seq); aerr != nil {
					r.s.log.Debug("ack not delivered (the incarnation is gone; the source replays)", "seq", seq, "err", aerr)
				}
			}
		}
		if err := out.Emit(ctx, batch, done); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("source %q: emit: %w", name, err)
		}
	}
}

// exhausted decides whether the end of inc's stream means the source is
// done: yes unless its process exits (within exhaustWait) with a failure
// — a crash also ends the stream. A process still running ended the
// stream on purpose.
func (r *Source) exhausted(inc *incarnation) bool {
	if inc.h != nil {
		t := time.NewTimer(exhaustWait)
		defer t.Stop()
		select {
		case <-inc.h.Done():
			if !cleanExit(inc.h) {
				return false
			}
		case <-t.C:
		}
	}
	r.s.mu.Lock()
	r.s.exhausted = true
	r.s.mu.Unlock()
	return true
}

// exhaustWait is how long a source that ended its stream may take to exit.
const exhaustWait = 2 * time.Second

var (
	_ flow.BatchProcessor = (*Processor)(nil)
	_ flow.Opener         = (*Processor)(nil)
	_ flow.Closer         = (*Processor)(nil)
	_ flow.Sink           = (*Sink)(nil)
	_ flow.Source         = (*Source)(nil)
)
