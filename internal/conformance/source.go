package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
)

// sourceFirst waits for one batch from a source and acknowledges it.
func (r *runner) sourceFirst(ctx context.Context, in *instance) (Outcome, string) {
	cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	t := time.Now()
	seq, b, err := in.conns.Source.Recv(cctx)
	if err != nil {
		return Fail, fmt.Sprintf("no batch within %v: %v", r.opts.Timeout, err)
	}
	if err := in.conns.Source.Ack(cctx, seq); err != nil {
		return Fail, fmt.Sprintf("ack seq %d: %v", seq, err)
	}
	return Pass, fmt.Sprintf("batch seq %d (%d events) in %v", seq, len(b), time.Since(t).Round(time.Millisecond))
}

// checkSourceBatches receives up to Batches batches, acknowledging each:
// every seq must be new and every batch non-empty, with distinct event ids.
func (r *runner) checkSourceBatches(ctx context.Context, rep *Report, in *instance) {
	cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	seqs := map[uint64]bool{}
	ids := map[string]bool{}
	events, dupIDs := 0, 0
	for len(seqs) < r.opts.Batches {
		seq, b, err := in.conns.Source.Recv(cctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rep.add(CheckAcks, Fail, "after %d batches: %v", len(seqs), err)
			return
		}
		if seqs[seq] {
			rep.add(CheckAcks, Fail, "seq %d sent twice on one stream without a restart", seq)
			return
		}
		if len(b) == 0 {
			rep.add(CheckAcks, Fail, "seq %d is an empty batch", seq)
			return
		}
		seqs[seq] = true
		for _, e := range b {
			if ids[e.ID] {
				dupIDs++
			}
			ids[e.ID] = true
		}
		events += len(b)
		if err := in.conns.Source.Ack(cctx, seq); err != nil {
			rep.add(CheckAcks, Fail, "ack seq %d: %v", seq, err)
			return
		}
	}
	time.Sleep(settle)
	if v := in.violations.list(); len(v) > 0 {
		rep.add(CheckAcks, Fail, "%d protocol violations: %v", len(v), v[0])
		return
	}
	if len(seqs) == 0 {
		rep.add(CheckAcks, Fail, "the source ended without sending a batch")
		return
	}
	note := ""
	if dupIDs > 0 {
		note = fmt.Sprintf("; %d event ids repeated (ids should be unique per source)", dupIDs)
	}
	rep.add(CheckAcks, Pass, "%d batches (%d events), each seq new, each acknowledged once%s", len(seqs), events, note)
}

// checkSourceDrain sends SIGTERM and keeps acknowledging until the source
// ends its stream, as flowctl does; it must then exit within the grace. A
// source waits for the acknowledgements of what it sent, so it is stopped
// this way for the sigterm row too (row names which).
func (r *runner) checkSourceDrain(ctx context.Context, rep *Report, in *instance, row string) {
	stopAt := time.Now()
	if err := in.signal(syscall.SIGTERM); err != nil {
		rep.add(row, Fail, "send SIGTERM: %v", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.Grace)
	defer cancel()
	n := 0
	var end error
	for {
		seq, _, err := in.conns.Source.Recv(cctx)
		if err != nil {
			end = err
			break
		}
		n++
		_ = in.conns.Source.Ack(cctx, seq)
	}
	_ = in.conns.Close()
	if !in.waitExit(time.Until(stopAt.Add(r.opts.Grace))) {
		in.kill()
		rep.add(row, Fail, "still running %v after SIGTERM (grace): killed; stream: %v", r.opts.Grace, end)
		return
	}
	st := in.h.Inspect()
	rep.add(row, Pass, "after SIGTERM: %d more batches acknowledged, stream ended (%v); exited %v later (%s)",
		n, end, st.ExitedAt.Sub(stopAt).Round(time.Millisecond), st.ExitString())
}
