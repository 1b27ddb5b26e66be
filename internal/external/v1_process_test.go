package external

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

// v1SlowProcessor answers every event from its own goroutine and returns
// at end of input without waiting, as the earlier SDK does. delay(n) is
// how long it takes for the event with data.n; skip(n) says it never
// answers it.
type v1SlowProcessor struct {
	flowctlv1.UnimplementedProcessorServiceServer
	delay func(n int) time.Duration
	skip  func(n int) bool
}

func (p *v1SlowProcessor) Process(stream flowctlv1.ProcessorService_ProcessServer) error {
	var mu sync.Mutex
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var m struct{ N int }
		json.Unmarshal(ev.GetPayload(), &m)
		if p.skip != nil && p.skip(m.N) {
			continue
		}
		go func() {
			time.Sleep(p.delay(m.N))
			mu.Lock()
			defer mu.Unlock()
			stream.Send(ev)
		}()
	}
}

func startSlowV1(t *testing.T, id string, p *v1SlowProcessor) (*v1ProcessorConn, *v1Shared) {
	t.Helper()
	rt := newGRPCRuntime(t)
	inst := instance(t, id, flow.RoleProcessor)
	startV1(t, rt, id, flow.RoleProcessor, func(gs *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(gs, p) })
	conn := readyConns(t, v1Protocol{}, rt, inst).Processor.(*v1ProcessorConn)
	return conn, rt.v1Shared(id)
}

func TestV1ProcessorSettlement(t *testing.T) {
	t.Run("late answer is delivered with the next batch", func(t *testing.T) {
		// n=0 answers 400 ms late, long after the stream went quiet
		// (the others answer at once): settled without an answer, then
		// delivered with the next batch and counted late.
		conn, sh := startSlowV1(t, "late", &v1SlowProcessor{delay: func(n int) time.Duration {
			if n == 0 {
				return 400 * time.Millisecond
			}
			return 0
		}})
		warm := jsonBatch("warm", 20, func(int) string { return "" })
		for i := range warm {
			warm[i].Data = []byte(`{"n":1}`)
		}
		if _, err := conn.Process(testCtx(t), warm); err != nil {
			t.Fatal(err)
		}
		batch := jsonBatch("a", 4, nil)
		res, err := conn.Process(testCtx(t), batch)
		if err != nil {
			t.Fatal(err)
		}
		// (Late answers of the warm-up, if it answered out of order, ride
		// on input 0.)
		if slices.ContainsFunc(res.Outputs[0], func(o *flow.Event) bool { return o.ID == "a-0" }) || len(res.Outputs[1]) != 1 {
			t.Fatalf("outputs %v: want input 0 settled without its (slow) answer", res.Outputs)
		}
		if got := sh.noAnswer.Load(); got < 1 {
			t.Fatalf("no answer = %d, want input 0 counted", got)
		}
		lateBefore := sh.late.Load()
		deadline := time.Now().Add(10 * time.Second)
		for sh.late.Load() == lateBefore {
			if time.Now().After(deadline) {
				t.Fatal("the late answer never arrived")
			}
			time.Sleep(10 * time.Millisecond) // the component's own delay; no signal to wait on
		}
		next := jsonBatch("b", 2, func(int) string { return "" })
		next[0].Data, next[1].Data = []byte(`{"n":1}`), []byte(`{"n":2}`)
		res, err = conn.Process(testCtx(t), next)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, outs := range res.Outputs {
			for _, o := range outs {
				ids = append(ids, o.ID)
			}
		}
		if len(ids) != 3 || ids[1] != "a-0" {
			t.Fatalf("next batch's outputs %v, want b-0, the late a-0, b-1", ids)
		}
		if sh.held() != 0 {
			t.Fatalf("%d late answers still held", sh.held())
		}
	})
	t.Run("an input unanswered while later ones are answered times out", func(t *testing.T) {
		// n=0 is never answered; meanwhile batches of one event, each
		// answered after 15 ms, keep the stream busy, so it never goes
		// quiet: n=0 fails after the answer timeout.
		conn, sh := startSlowV1(t, "timeout", &v1SlowProcessor{
			skip:  func(n int) bool { return n == 0 },
			delay: func(int) time.Duration { return 15 * time.Millisecond },
		})
		conn.timeout = 300 * time.Millisecond
		s := conn.streams[0]
		s.mu.Lock()
		s.ordered = false // as if it had answered out of order before
		s.mu.Unlock()
		type answer struct {
			res Result
			err error
		}
		first := make(chan answer, 1)
		go func() {
			res, err := conn.Process(testCtx(t), jsonBatch("t", 1, nil))
			first <- answer{res, err}
		}()
		var a answer
	busy:
		for i := 1; ; i++ {
			select {
			case a = <-first:
				break busy
			default:
			}
			if i > 200 {
				t.Fatal("input 0 was never settled")
			}
			b := jsonBatch("busy", 1, nil)
			b[0].ID = b[0].ID + "-" + time.Now().String()
			b[0].Data = []byte(`{"n":1}`)
			res, err := conn.Process(testCtx(t), b)
			if err != nil || len(res.Outputs[0]) != 1 {
				t.Fatalf("busy batch %d: %v, %v", i, res.Outputs, err)
			}
		}
		if a.err != nil {
			t.Fatal(a.err)
		}
		if !errors.Is(a.res.Failures[0], errV1NoAnswer) {
			t.Fatalf("failures %v, want input 0 to time out", a.res.Failures)
		}
		if sh.timedOut.Load() != 1 {
			t.Fatalf("timed out = %d, want 1", sh.timedOut.Load())
		}
	})
}

func TestV1AnswerTimeoutConfig(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want time.Duration
		err  bool
	}{
		{"default", nil, DefaultV1AnswerTimeout, false},
		{"duration", "30s", 30 * time.Second, false},
		{"seconds", 2, 2 * time.Second, false},
		{"fraction", 0.5, 500 * time.Millisecond, false},
		{"garbage", "soon", 0, true},
		{"zero", "0s", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			comp := instance(t, "p", flow.RoleProcessor).Component
			if c.v != nil {
				comp.Config = flow.Config{ConfigV1AnswerTimeout: c.v}
			}
			got, err := V1AnswerTimeout(comp)
			if (err != nil) != c.err || got != c.want {
				t.Fatalf("V1AnswerTimeout(%v) = %v, %v", c.v, got, err)
			}
		})
	}
}
