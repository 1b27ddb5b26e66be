package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
)

// These shape the stdio credit probe: batches of events of at least
// stdioProbeEventSize bytes, stdioProbeBytes in all.
const (
	stdioProbeEventSize = 4 << 10
	stdioProbeBatch     = 4
	stdioProbeBytes     = 2 * StdioReadAhead
	// stall is how long the bytes written to stdin must stay unchanged for
	// the component to count as no longer reading.
	stall = 500 * time.Millisecond
)

// stdioCredits stops reading the component's stdout while the conn keeps
// writing inputs (2 MiB, within its window of StdioWindow events). A
// component that writes its answers as it goes blocks on its full stdout
// and so stops reading stdin; what it consumed is what the conn
// wrote minus what still sits in the stdin pipe. More than StdioReadAhead
// means it queues input without bound.
func (r *runner) stdioCredits(ctx context.Context, in *instance) (Outcome, string) {
	in.gate.hold()
	// 2 MiB, twice the bound, in events large enough for all of them to
	// fit the conn's window at once.
	eventSize := max(stdioProbeEventSize, stdioProbeBytes/external.StdioWindow+1)
	n := min(stdioProbeBytes/(stdioProbeBatch*eventSize)+1, external.StdioWindow/stdioProbeBatch)
	batches := make([][]*flow.Event, n)
	for b := range batches {
		batches[b] = r.events(1000+b, stdioProbeBatch, eventSize)
	}
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan []sent, 1)
	go func() { done <- r.sendAll(sendCtx, in, batches) }()

	// Watch the bytes written until they stop growing.
	last, lastChange := int64(-1), time.Now()
	deadline := time.Now().Add(r.opts.Timeout + stall)
	for time.Now().Before(deadline) {
		w := in.stdin.count()
		if w != last {
			last, lastChange = w, time.Now()
		} else if time.Since(lastChange) >= stall {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	written := in.stdin.count()
	inPipe, perr := pipeFill(in.h.Stdin())
	consumed := written - int64(inPipe)
	in.gate.open()

	// Let it answer what it took, so the instance is usable afterwards
	// (within the conn's own answer timeout).
	wctx, wcancel := context.WithTimeout(ctx, 3*r.opts.Timeout)
	defer wcancel()
	var res []sent
	select {
	case res = <-done:
	case <-wctx.Done():
		cancel()
		res = <-done
	}
	unanswered := 0
	for _, s := range res {
		if s.err != nil {
			unanswered++
		}
	}
	if perr != nil {
		return Fail, fmt.Sprintf("measure the stdin pipe: %v", perr)
	}
	d := fmt.Sprintf("stdout not read: it consumed %s of stdin (%s written, %s still in the pipe; bound %s)",
		size(consumed), size(written), size(int64(inPipe)), size(StdioReadAhead))
	if consumed > StdioReadAhead {
		return Fail, d + ": it reads ahead without bound"
	}
	if unanswered > 0 {
		return Fail, d + fmt.Sprintf(", but %d of %d batches were not answered once stdout was read again", unanswered, n)
	}
	return Pass, d + "; all answered once read again"
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
