//go:build linux

package external

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// startChild starts bin as component id of rt, as the process driver
// would, and returns it with the instance to connect to.
func startChild(t *testing.T, rt *Runtime, bin, id string, role flow.Role) (*exec.Cmd, *Instance) {
	t.Helper()
	inst := instance(t, id, role)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"ENABLE_FLOWCTL=true",
		"FLOWCTL_ENDPOINT="+rt.Endpoint,
		"FLOWCTL_COMPONENT_ID="+id,
		"FLOWCTL_HEARTBEAT_INTERVAL=1s",
		"PORT=127.0.0.1:0",
	)
	cmd.Stderr = tlogWriter{t}
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	inst.Exited = exited
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return cmd, inst
}

func TestGRPCRedeliveryAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/sdk-processor")
	}
	bin := buildSDKProcessor(t, t.TempDir())
	rt := newGRPCRuntime(t)
	cmd, inst := startChild(t, rt, bin, "usd", flow.RoleProcessor)
	conn := readyConns(t, grpcProtocol{}, rt, inst).Processor

	w1 := func(i int) string { return fmt.Sprintf(`,"amount":%d,"kind":"fee"`, i*100) }
	// Freeze the child so that the batches sent stay unanswered, then
	// kill it: every one of them must come back as an error.
	syscall.Kill(cmd.Process.Pid, syscall.SIGSTOP)
	// SIGSTOP takes effect asynchronously: a batch sent before every
	// thread has stopped can still be answered.
	waitStopped(t, cmd.Process.Pid)
	const inflight = 3
	batches := make([][]*flow.Event, inflight)
	ctxs := make([]context.Context, inflight)
	errs := make(chan error, inflight)
	for i := range inflight {
		batches[i] = jsonBatch(fmt.Sprint("k", i), 100, w1)
		ctxs[i] = WithDelivery(testCtx(t))
		go func() {
			_, err := conn.Process(ctxs[i], batches[i])
			errs <- err
		}()
	}
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	for range inflight {
		select {
		case err := <-errs:
			if err == nil {
				t.Fatal("a batch sent to a frozen, then killed, component was answered")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Process did not return after the component was killed")
		}
	}
	conn.Close()

	_, inst2 := startChild(t, rt, bin, "usd", flow.RoleProcessor)
	conn2 := readyConns(t, grpcProtocol{}, rt, inst2).Processor
	for i := range inflight {
		res, err := conn2.Process(ctxs[i], batches[i])
		if err != nil {
			t.Fatal(err)
		}
		for j, outs := range res.Outputs {
			var m map[string]any
			if len(outs) != 1 || json.Unmarshal(outs[0].Data, &m) != nil || m["kind"] != "FEE" || m["amount_usd"] != float64(j) {
				t.Fatalf("batch %d output %d: %v", i, j, outs)
			}
		}
	}
}
