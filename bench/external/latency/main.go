//go:build linux

// Command latency measures the per-hop latency of one external processor:
// it starts the component as a child process, the way `flowctl run` does
// (control plane on loopback, the component's environment, registration),
// connects to it with the component's protocol, and sends it events at a
// fixed rate, in the batches a source would hand over at that rate (what
// is ready every tick). The hop latency of a batch is the time from
// handing it to the protocol connection until its answer is back: wire
// encoding both ways, the component's work and the network.
//
//	go run ./bench/external/latency                       # examples/sdk-processor over grpc
//	go run ./bench/external/latency -rate 10000 -duration 10s -tick 1ms
//	go run ./bench/external/latency -protocol flowctl-v1 -command /tmp/v1component
//
// It prints p50, p90, p99, p99.9 and the maximum, per batch and per event
// (an event's latency is its batch's).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

func main() {
	rate := flag.Float64("rate", 10000, "events per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send (after the warm-up)")
	warmup := flag.Duration("warmup", time.Second, "sending time not measured, first")
	tick := flag.Duration("tick", time.Millisecond, "how often the batch of the events due is sent")
	protocol := flag.String("protocol", "grpc", "grpc | flowctl-v1 | auto")
	command := flag.String("command", "", "the processor to start; default: examples/sdk-processor, built now")
	flag.Parse()
	if err := run(*rate, *duration, *warmup, *tick, *protocol, *command); err != nil {
		log.Fatal(err)
	}
}

func run(rate float64, duration, warmup, tick time.Duration, protoName, command string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if command == "" {
		dir, err := os.MkdirTemp("", "flowctl-latency")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		command = filepath.Join(dir, "sdk-processor")
		_, file, _, _ := runtime.Caller(0)
		build := exec.Command("go", "build", "-o", command, "./examples/sdk-processor")
		build.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build examples/sdk-processor: %v\n%s", err, out)
		}
	}
	proto, err := external.LookupProtocol(protoName)
	if err != nil {
		return err
	}

	cp := controlplane.NewServer(controlplane.NewRegistry(controlplane.Options{}), logger)
	cpAddr, err := cp.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer cp.Stop()
	rt := &external.Runtime{Pipeline: "latency", Logger: logger, ControlPlane: cp, Endpoint: cpAddr, HeartbeatInterval: time.Second}
	comp := &spec.Component{Name: "hop", Role: flow.RoleProcessor, Command: []string{command}, Parallelism: 1}
	launch, err := proto.Launch(rt, comp)
	if err != nil {
		return err
	}
	env, _, err := external.BuildEnv(rt, comp, launch)
	if err != nil {
		return err
	}
	cmd := exec.Command(command)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	inst := &external.Instance{Component: comp, ID: "hop", Started: time.Now(), Env: env, Logger: logger}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	inst.Exited = exited
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	conns, err := proto.Ready(ctx, rt, inst)
	cancel()
	if err != nil {
		return err
	}
	defer conns.Close()

	var (
		mu       sync.Mutex
		batchLat []time.Duration
		eventLat []time.Duration
		events   int
		failures int
		wg       sync.WaitGroup
		firstErr error
	)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	sent := 0
	t := time.NewTicker(tick)
	defer t.Stop()
	for now := range t.C {
		if now.After(end) {
			break
		}
		// What is due by now: a late tick sends a bigger batch, as a
		// source that fell behind would.
		n := int(rate*now.Sub(start).Seconds()) - sent
		if n <= 0 {
			continue
		}
		for n > 0 {
			size := min(n, flow.MaxBatch)
			batch := make([]*flow.Event, size)
			for i := range batch {
				id := sent + i
				batch[i] = &flow.Event{
					ID: fmt.Sprint("hop:", id), Type: "payment", Source: "gen",
					Data: fmt.Appendf(nil, `{"id":%d,"ts":"2026-01-01T00:00:00Z","account":"acct-%d","amount":%d,"kind":"payment"}`, id, id%1000, (id*7919)%10000),
				}
			}
			sent += size
			n -= size
			measured := now.After(measureFrom)
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				res, err := conns.Processor.Process(context.Background(), batch)
				d := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				failures += len(res.Failures)
				if measured {
					batchLat = append(batchLat, d)
					for range batch {
						eventLat = append(eventLat, d)
					}
					events += len(batch)
				}
			}()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fmt.Printf("one external processor (%s, %s), %.0f events/s offered, batches every %s, %s measured after %s warm-up\n",
		protoName, filepath.Base(command), rate, tick, duration, warmup)
	fmt.Printf("  achieved %.0f events/s, %d batches, %d events, %d failures\n",
		float64(events)/duration.Seconds(), len(batchLat), events, failures)
	report("per batch", batchLat)
	report("per event", eventLat)
	return nil
}

func report(what string, d []time.Duration) {
	if len(d) == 0 {
		fmt.Printf("  %-9s no samples\n", what)
		return
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	fmt.Printf("  %-9s p50 %8s  p90 %8s  p99 %8s  p99.9 %8s  max %8s\n", what,
		q(0.50).Round(time.Microsecond), q(0.90).Round(time.Microsecond), q(0.99).Round(time.Microsecond),
		q(0.999).Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
}
