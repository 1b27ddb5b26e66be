package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// settle is how long the acks check waits after the last answer for late
// duplicates.
const settle = 300 * time.Millisecond

// drainHead is how long the drain check lets batches travel before it stops
// the component (unless all are answered sooner).
const drainHead = 300 * time.Millisecond

// runner holds what every check of one run shares.
type runner struct {
	opts  Options
	log   *slog.Logger
	proto external.Protocol
	rt    *external.Runtime
	comp  *spec.Component
	life  int // incarnation, for distinct event ids
}

// Run tests the component opts describes and returns the report. An error
// means the test could not be run at all (bad options, no control plane);
// a component that fails a check is a Report with a failed row.
//
// The checks run on two incarnations of the component:
//
//	first:  start → info → health → acks → drain (stop with work in flight)
//	second: restart → credits → sigterm (stop when idle)
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	proto, err := external.LookupProtocol(opts.Protocol)
	if err != nil {
		return nil, err
	}
	r := &runner{opts: opts, log: opts.Logger, proto: proto}
	r.rt = &external.Runtime{
		Pipeline:          "component-test",
		Dir:               opts.Dir,
		Logger:            opts.Logger,
		Output:            opts.Output,
		HeartbeatInterval: time.Second,
	}
	if opts.Protocol == ProtocolGRPC || opts.Protocol == ProtocolV1 {
		reg := controlplane.NewRegistry(controlplane.Options{HeartbeatInterval: r.rt.HeartbeatInterval})
		guard, err := controlplane.NewGuard()
		if err != nil {
			return nil, err
		}
		cp := controlplane.NewGuardedServer(reg, opts.Logger, guard)
		addr, err := cp.Start("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("start the embedded control plane: %w", err)
		}
		defer cp.Stop()
		r.rt.ControlPlane, r.rt.Endpoint = cp, addr
	}
	r.comp = r.component()
	rep := &Report{Protocol: opts.Protocol, Role: opts.Role, Command: opts.Command}
	r.run(ctx, rep)
	return rep, nil
}

func (r *runner) run(ctx context.Context, rep *Report) {
	r.life = 1
	in, err := r.start(ctx)
	if err != nil {
		rep.add(CheckStart, Fail, "%v", err)
		for _, c := range []string{CheckInfo, CheckHealth, CheckAcks, CheckDrain} {
			rep.add(c, Skip, "the component did not start")
		}
	} else {
		rep.add(CheckStart, Pass, "%s", r.startDetail(in))
		r.checkInfo(ctx, rep, in)
		r.checkHealth(ctx, rep, in)
		r.checkAcks(ctx, rep, in)
		if row, _ := rep.Row(CheckAcks); row.Outcome == Fail && r.opts.Role != flow.RoleSource {
			// The conn may be broken (a batch abandoned): drain a fresh
			// incarnation so that the row says something of its own.
			in.kill()
			in, err = r.start(ctx)
		}
		if err != nil {
			rep.add(CheckDrain, Fail, "start a fresh incarnation for it: %v", err)
		} else {
			r.checkDrain(ctx, rep, in)
			in.kill()
		}
	}

	r.life = 2
	in, err = r.start(ctx)
	if err != nil {
		rep.add(CheckRestart, Fail, "second start: %v", err)
		rep.add(CheckCredits, Skip, "the component did not start again")
		rep.add(CheckSIGTERM, Skip, "the component did not start again")
		return
	}
	r.checkRestart(ctx, rep, in)
	if row, _ := rep.Row(CheckRestart); row.Outcome == Fail {
		// As after acks: probe a fresh incarnation, not a broken conn.
		in.kill()
		if in, err = r.start(ctx); err != nil {
			rep.add(CheckCredits, Fail, "start a fresh incarnation for it: %v", err)
			rep.add(CheckSIGTERM, Skip, "the component did not start again")
			return
		}
	}
	defer in.kill()
	r.checkCredits(ctx, rep, in)
	if r.opts.Role == flow.RoleSource {
		r.checkSourceDrain(ctx, rep, in, CheckSIGTERM)
		return
	}
	r.checkSIGTERM(rep, in)
}

func (r *runner) startDetail(in *instance) string {
	switch r.opts.Protocol {
	case ProtocolGRPC, ProtocolV1:
		ep, _ := r.rt.ControlPlane.Endpoint(r.comp.Name)
		return fmt.Sprintf("registered %s with the control plane %v after start", ep, in.ready.Round(time.Millisecond))
	case ProtocolHTTP:
		return fmt.Sprintf("GET /health answered on %s %v after start", in.inst.Env["PORT"], in.ready.Round(time.Millisecond))
	}
	return fmt.Sprintf("process started (pid %d), pipes open", in.h.PID())
}

// events builds batch b of the current incarnation: n distinct events of
// about size bytes of JSON each.
func (r *runner) events(b, n, size int) []*flow.Event {
	out := make([]*flow.Event, n)
	pad := ""
	if size > 80 {
		pad = strings.Repeat("x", size-80)
	}
	for i := range out {
		k := (r.life*1000+b)*1000 + i
		out[i] = &flow.Event{
			ID:     fmt.Sprintf("conformance-%d-%d-%d", r.life, b, i),
			Source: "flowctl-component-test",
			Type:   "conformance",
			Time:   time.Now().UTC(),
			Data:   []byte(fmt.Sprintf(`{"id":%d,"amount":%d,"kind":"payment","pad":%q}`, k, k%100000, pad)),
		}
	}
	return out
}

// send hands one batch to the component through its conn and waits for the
// answer. failures are the events the component reported failed.
func (r *runner) send(ctx context.Context, in *instance, batch []*flow.Event) (outputs int, failures map[int]error, err error) {
	switch {
	case in.conns.Processor != nil:
		res, err := in.conns.Processor.Process(ctx, batch)
		if err != nil {
			return 0, nil, err
		}
		if len(res.Outputs) != len(batch) {
			return 0, nil, fmt.Errorf("answer covers %d inputs of %d", len(res.Outputs), len(batch))
		}
		for _, o := range res.Outputs {
			outputs += len(o)
		}
		return outputs, res.Failures, nil
	case in.conns.Sink != nil:
		f, err := in.conns.Sink.Write(ctx, batch)
		return 0, f, err
	}
	return 0, nil, fmt.Errorf("no conn for role %s", r.opts.Role)
}

// sent is the outcome of one batch sent in a check.
type sent struct {
	outputs  int
	failures map[int]error
	err      error
	took     time.Duration
}

// sendAll sends the batches at once, each from its own goroutine, and
// waits for every answer (or ctx).
func (r *runner) sendAll(ctx context.Context, in *instance, batches [][]*flow.Event) []sent {
	res := make([]sent, len(batches))
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			o, f, err := r.send(ctx, in, b)
			res[i] = sent{outputs: o, failures: f, err: err, took: time.Since(t)}
		}()
	}
	wg.Wait()
	return res
}

func (r *runner) checkInfo(ctx context.Context, rep *Report, in *instance) {
	switch r.opts.Protocol {
	case ProtocolGRPC:
		o, d := r.grpcInfo(ctx)
		rep.add(CheckInfo, o, "%s", d)
	case ProtocolV1:
		o, d := r.v1Info(ctx)
		rep.add(CheckInfo, o, "%s", d)
	default:
		// stdio and http have no describe call: "info" is that a first
		// batch is answered within the start-up timeout.
		if r.opts.Role == flow.RoleSource {
			o, d := r.sourceFirst(ctx, in)
			rep.add(CheckInfo, o, "%s has no GetInfo; first batch: %s", r.opts.Protocol, d)
			return
		}
		cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
		t := time.Now()
		_, f, err := r.send(cctx, in, r.events(0, 1, 0))
		if err == nil && f[0] != nil {
			err = fmt.Errorf("its one event failed: %w", f[0])
		}
		if err != nil {
			rep.add(CheckInfo, Fail, "%s has no GetInfo, so a first batch must be answered within %v: %v", r.opts.Protocol, r.opts.Timeout, err)
			return
		}
		rep.add(CheckInfo, Pass, "%s has no GetInfo; answered a first batch in %v", r.opts.Protocol, time.Since(t).Round(time.Millisecond))
	}
}

func (r *runner) checkHealth(ctx context.Context, rep *Report, in *instance) {
	switch r.opts.Protocol {
	case ProtocolGRPC:
		o, d := r.grpcHealth(ctx)
		rep.add(CheckHealth, o, "%s", d)
	case ProtocolV1:
		o, d := r.v1Health(ctx)
		rep.add(CheckHealth, o, "%s", d)
	case ProtocolHTTP:
		rep.add(CheckHealth, Pass, "GET /health answered before the first batch (flowctl needs only that it answers)")
	default:
		rep.add(CheckHealth, Skip, "stdio has no health call: flowctl judges a stdio component alive while it answers within answer_timeout")
	}
}

func (r *runner) checkAcks(ctx context.Context, rep *Report, in *instance) {
	if r.opts.Role == flow.RoleSource {
		r.checkSourceBatches(ctx, rep, in)
		return
	}
	n, size := r.opts.Batches, r.opts.BatchSize
	batches := make([][]*flow.Event, n)
	for b := range batches {
		batches[b] = r.events(b+1, size, 0)
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	res := r.sendAll(cctx, in, batches)
	time.Sleep(settle) // a duplicate answer comes right after the first
	var errs []string
	outputs, failed := 0, 0
	var firstFailure error
	for b, s := range res {
		if s.err != nil {
			errs = append(errs, fmt.Sprintf("batch %d: %v", b+1, s.err))
			continue
		}
		outputs += s.outputs
		failed += len(s.failures)
		for i := range size {
			if e := s.failures[i]; e != nil && firstFailure == nil {
				firstFailure = e
			}
		}
	}
	viol := in.violations.list()
	switch {
	case len(errs) > 0:
		rep.add(CheckAcks, Fail, "%d of %d batches not answered within %v (%s)", len(errs), n, r.opts.Timeout, errs[0])
	case failed == n*size:
		// Failing every plain JSON event is no answer at all; it is also how
		// the http conn reports an answer it cannot match to the inputs.
		rep.add(CheckAcks, Fail, "every event failed (first: %v)", firstFailure)
	case len(viol) > 0:
		rep.add(CheckAcks, Fail, "answers for inputs no longer in flight (answered twice?), first: %v", viol[0])
	default:
		note := ""
		if r.opts.Protocol == ProtocolV1 {
			note = "; flowctl.v1 has no acknowledgements (at-most-once): checked that every batch came back"
		}
		if firstFailure != nil {
			note += fmt.Sprintf("; first failure: %v", firstFailure)
		}
		rep.add(CheckAcks, Pass, "%d batches × %d distinct events in flight together, each answered exactly once (%d outputs, %d failed)%s",
			n, size, outputs, failed, note)
	}
}

// checkDrain stops the component with batches in flight: SIGTERM for the
// gRPC protocols and http, end of stdin for stdio (its stop signal; flowctl
// sends SIGTERM only if it is still running after stop_grace). Every batch
// sent must be answered (or, over gRPC, declined after Drain: it was not
// taken and goes to the next incarnation), then the process must exit
// within the grace. Over http a request that fails at the exit is not held
// against the component: nothing tells a request it never accepted from
// one it dropped, and flowctl redelivers both.
func (r *runner) checkDrain(ctx context.Context, rep *Report, in *instance) {
	if r.opts.Role == flow.RoleSource {
		r.checkSourceDrain(ctx, rep, in, CheckDrain)
		return
	}
	k := min(r.opts.Batches, 4)
	batches := make([][]*flow.Event, k)
	for b := range batches {
		batches[b] = r.events(100+b, r.opts.BatchSize, 0)
	}
	// The batches get the whole grace plus the time before the stop.
	cctx, cancel := context.WithTimeout(ctx, r.opts.Grace+drainHead)
	defer cancel()
	begin := time.Now()
	done := make(chan []sent, 1)
	go func() { done <- r.sendAll(cctx, in, batches) }()

	// Stop once every batch is answered or drainHead passed, whichever is
	// first: a slow component then has batches in flight at the stop, and
	// the conns have surely sent them (a batch the conn had not sent yet
	// would be declined, which proves nothing).
	var res []sent
	select {
	case res = <-done:
	case <-time.After(drainHead):
	}
	how, stopAt := "SIGTERM", time.Now()
	if r.opts.Protocol == ProtocolStdio {
		how = "end of stdin"
		if err := in.h.Stdin().Close(); err != nil {
			rep.add(CheckDrain, Fail, "close stdin: %v", err)
			return
		}
	} else if err := in.signal(syscall.SIGTERM); err != nil {
		rep.add(CheckDrain, Fail, "send SIGTERM: %v", err)
		return
	}
	if res == nil {
		res = <-done
	}
	inFlight := 0
	for _, s := range res {
		if s.err != nil || begin.Add(s.took).After(stopAt) {
			inFlight++
		}
	}
	answered, declined, cut := 0, 0, 0
	var lost []string
	for b, s := range res {
		switch {
		case s.err == nil:
			answered++
		case isDraining(s.err):
			declined++
		case r.opts.Protocol == ProtocolHTTP:
			// A request cut off by the exit (or never accepted) cannot be
			// told from one refused; flowctl redelivers both to the next
			// incarnation, so for http only the exit is judged.
			cut++
		default:
			lost = append(lost, fmt.Sprintf("batch %d: %v", b+1, s.err))
		}
	}
	// Over gRPC the conn half-closes on Drain; closing it now also ends a
	// stream of a component that never sent Drain.
	if r.opts.Protocol != ProtocolStdio {
		_ = in.conns.Close()
	}
	exited := in.waitExit(time.Until(stopAt.Add(r.opts.Grace)))
	st := in.h.Inspect()
	summary := fmt.Sprintf("%d batches sent, %d of them unanswered at %s; %d answered in all", k, inFlight, how, answered)
	if declined > 0 {
		summary += fmt.Sprintf(", %d declined after Drain (not sent: they go to the next incarnation)", declined)
	}
	if cut > 0 {
		summary += fmt.Sprintf(", %d cut off by the exit (redelivered by flowctl to the next incarnation)", cut)
	}
	switch {
	case len(lost) > 0:
		if !exited {
			in.kill()
		}
		rep.add(CheckDrain, Fail, "%s, %d unanswered (%s)", summary, len(lost), lost[0])
	case !exited:
		in.kill()
		rep.add(CheckDrain, Fail, "%s; still running %v after %s (grace %v): killed", summary, r.opts.Grace, how, r.opts.Grace)
	default:
		rep.add(CheckDrain, Pass, "%s; exited %v later (%s)", summary, st.ExitedAt.Sub(stopAt).Round(time.Millisecond), st.ExitString())
	}
}

// isDraining reports whether err is the gRPC conn declining a batch because
// the component sent Drain: the batch was never sent.
func isDraining(err error) bool {
	return err != nil && strings.Contains(err.Error(), "is draining")
}

func (r *runner) checkRestart(ctx context.Context, rep *Report, in *instance) {
	if r.opts.Role == flow.RoleSource {
		o, d := r.sourceFirst(ctx, in)
		rep.add(CheckRestart, o, "started again (%v); %s", in.ready.Round(time.Millisecond), d)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	t := time.Now()
	_, f, err := r.send(cctx, in, r.events(1, r.opts.BatchSize, 0))
	if err != nil {
		rep.add(CheckRestart, Fail, "started again, but the first batch was not answered: %v", err)
		return
	}
	if len(f) == r.opts.BatchSize {
		rep.add(CheckRestart, Fail, "started again, but every event of the first batch failed (first: %v)", f[0])
		return
	}
	rep.add(CheckRestart, Pass, "started again and ready in %v; answered a batch in %v",
		in.ready.Round(time.Millisecond), time.Since(t).Round(time.Millisecond))
}

func (r *runner) checkCredits(ctx context.Context, rep *Report, in *instance) {
	switch {
	case r.opts.Role == flow.RoleSource:
		rep.add(CheckCredits, Skip, "flowctl grants a source its credit and its conn refuses batches beyond it (a violation breaks the acks row)")
	case r.opts.Protocol == ProtocolV1:
		rep.add(CheckCredits, Skip, "flowctl.v1 has no credits: only HTTP/2 flow control bounds what it reads ahead")
	case r.opts.Protocol == ProtocolHTTP:
		rep.add(CheckCredits, Skip, "http is request/response: a component holds only the requests flowctl has open (at most %d)", external.HTTPWindow)
	case r.opts.Protocol == ProtocolStdio && r.opts.Role == flow.RoleSink:
		rep.add(CheckCredits, Skip, "a stdio sink answers with short done lines that cannot fill its stdout within flowctl's window of %d events, so that window is what bounds it", external.StdioWindow)
	case r.opts.Protocol == ProtocolStdio:
		o, d := r.stdioCredits(ctx, in)
		rep.add(CheckCredits, o, "%s", d)
	default:
		o, d := r.grpcCredits(ctx, in)
		rep.add(CheckCredits, o, "%s", d)
	}
}

// checkSIGTERM stops an idle component with SIGTERM (stdin left open for
// stdio): it must exit within the grace.
func (r *runner) checkSIGTERM(rep *Report, in *instance) {
	stopAt := time.Now()
	if err := in.signal(syscall.SIGTERM); err != nil {
		rep.add(CheckSIGTERM, Fail, "send SIGTERM: %v", err)
		return
	}
	if !in.waitExit(r.opts.Grace) {
		st := in.kill()
		rep.add(CheckSIGTERM, Fail, "idle, still running %v after SIGTERM (grace %v): killed (%s)", r.opts.Grace, r.opts.Grace, st.ExitString())
		return
	}
	st := in.h.Inspect()
	rep.add(CheckSIGTERM, Pass, "idle, exited %v after SIGTERM (%s)", st.ExitedAt.Sub(stopAt).Round(time.Millisecond), st.ExitString())
}
