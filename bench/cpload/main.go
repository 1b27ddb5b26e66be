// Command cpload measures how a flowctl server holds many heartbeating
// components: it registers N components over a few gRPC connections, has
// each heartbeat every interval (spread evenly over the interval), and
// reports the heartbeat latency (p50/p90/p99/max), the server's CPU use and
// RSS (from /proc), and how many components the server lists as healthy at
// the end.
//
//	go run ./bench/cpload -flowctl ./flowctl -n 10000            # starts a server
//	go run ./bench/cpload -addr 127.0.0.1:7070 -pid 1234 -n 10000 # a running one
//
// Traffic goes only to the given loopback address; the run is bounded by
// -duration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

func main() {
	var (
		addr     = flag.String("addr", "", "server address (host:port); empty starts one with -flowctl")
		pid      = flag.Int("pid", 0, "server process id, for CPU and RSS (found from -flowctl when it starts one)")
		bin      = flag.String("flowctl", "", "flowctl binary to start a server with (on a free loopback port, temporary data dir)")
		n        = flag.Int("n", 10000, "components to register")
		conns    = flag.Int("conns", 4, "gRPC connections to spread them over")
		interval = flag.Duration("interval", time.Second, "heartbeat interval of each component")
		duration = flag.Duration("duration", 30*time.Second, "how long to measure heartbeats")
		warmup   = flag.Duration("warmup", 3*time.Second, "heartbeats before measuring")
	)
	flag.Parse()
	if err := run(*addr, *pid, *bin, *n, *conns, *interval, *duration, *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "cpload:", err)
		os.Exit(1)
	}
}

func run(addr string, pid int, bin string, n, nconns int, interval, duration, warmup time.Duration) error {
	if !strings.HasPrefix(addr, "127.") && addr != "" && !strings.HasPrefix(addr, "localhost:") && !strings.HasPrefix(addr, "[::1]") {
		return fmt.Errorf("-addr %s: this tool only loads a server on this machine (a loopback address)", addr)
	}
	if addr == "" {
		if bin == "" {
			return errors.New("give -addr of a running server or -flowctl to start one")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr = l.Addr().String()
		l.Close()
		dir, err := os.MkdirTemp("", "cpload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// A load test of the TCP path on loopback: no token, said so.
		cmd := exec.Command(bin, "server", "--listen", addr, "--insecure", "--data-dir", dir, "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
		pid = cmd.Process.Pid
		time.Sleep(500 * time.Millisecond)
	}
	conns := make([]*grpc.ClientConn, nconns)
	clients := make([]streamv1.ControlPlaneServiceClient, nconns)
	for i := range conns {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i], clients[i] = c, streamv1.NewControlPlaneServiceClient(c)
	}

	// Register, 64 at a time.
	start := time.Now()
	var regErr atomic.Value
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := clients[i%nconns].Register(ctx, &streamv1.RegisterRequest{Registration: &streamv1.Registration{
				Id: fmt.Sprintf("cpload-%05d", i), Role: streamv1.Role_ROLE_PROCESSOR,
				Endpoint: "127.0.0.1:1", Name: "cpload", Metadata: map[string]string{"bench": "cpload"},
				Ttl: durationpb.New(3 * interval),
			}})
			if err != nil {
				regErr.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, _ := regErr.Load().(error); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	fmt.Printf("registered %d components over %d connections in %s\n", n, nconns, time.Since(start).Round(time.Millisecond))

	// Heartbeat: component i beats at offset i*interval/n in each
	// interval. A scheduler hands due ids to a pool of workers per
	// connection, so the load tool itself stays light.
	ctx, cancel := context.WithTimeout(context.Background(), warmup+duration)
	defer cancel()
	measureFrom := time.Now().Add(warmup)
	var cpu0 cpuSample
	var cpuOnce sync.Once
	const workersPerConn = 32
	type result struct{ lat []time.Duration }
	results := make([]result, nconns*workersPerConn)
	var errs atomic.Int64
	due := make([]chan int, nconns)
	for c := range nconns {
		due[c] = make(chan int, n)
		for w := range workersPerConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := &results[c*workersPerConn+w]
				beats := map[int]int64{}
				for i := range due[c] {
					beats[i]++
					if ctx.Err() != nil {
						continue // the run is over: drop what is still queued
					}
					cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
					s := time.Now()
					_, err := clients[c].Heartbeat(cctx, &streamv1.HeartbeatRequest{Id: fmt.Sprintf("cpload-%05d", i), Health: streamv1.HealthStatus_HEALTH_STATUS_HEALTHY,
						Metrics: map[string]string{"in": strconv.FormatInt(beats[i]*100, 10), "out": strconv.FormatInt(beats[i]*100, 10)}})
					d := time.Since(s)
					ccancel()
					if err != nil {
						if errs.Add(1) <= 3 {
							fmt.Fprintf(os.Stderr, "heartbeat %d: %v\n", i, err)
						}
						continue
					}
					if s.After(measureFrom) {
						cpuOnce.Do(func() { cpu0 = sampleCPU(pid) })
						res.lat = append(res.lat, d)
					}
				}
			}()
		}
	}
	t0 := time.Now()
	tick := time.NewTicker(time.Millisecond)
	nextID := 0
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case now := <-tick.C:
			// Every id whose slot has come in this interval.
			elapsed := now.Sub(t0)
			upto := int(int64(elapsed) * int64(n) / int64(interval))
			for ; nextID < upto; nextID++ {
				i := nextID % n
				select {
				case due[i%nconns] <- i:
				default: // workers far behind: skip a beat rather than pile up
				}
			}
		}
	}
	tick.Stop()
	for _, c := range due {
		close(c)
	}
	lats := make([][]time.Duration, len(results))
	for i := range results {
		lats[i] = results[i].lat
	}
	wg.Wait()
	cpu1 := sampleCPU(pid)

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return errors.New("no heartbeat measured")
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	fmt.Printf("heartbeats: %d measured over %s (%.0f/s), %d errors\n", len(all), duration, float64(len(all))/duration.Seconds(), errs.Load())
	fmt.Printf("latency: p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), all[len(all)-1].Round(time.Microsecond))
	if pid > 0 && cpu1.ok && cpu0.ok {
		secs := cpu1.at.Sub(cpu0.at).Seconds()
		fmt.Printf("server pid %d: CPU %.1f%% of one core (%.2fs user+sys in %.1fs), RSS %d MiB (peak %d MiB)\n",
			pid, 100*(cpu1.cpu-cpu0.cpu)/secs, cpu1.cpu-cpu0.cpu, secs, cpu1.rssKiB/1024, cpu1.hwmKiB/1024)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer lcancel()
	resp, err := clients[0].Discover(lctx, &streamv1.DiscoverRequest{Metadata: map[string]string{"bench": "cpload"}, IncludeUnhealthy: true}, grpc.MaxCallRecvMsgSize(256<<20))
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	healthy := 0
	for _, c := range resp.GetComponents() {
		if c.GetHealth() == streamv1.HealthStatus_HEALTH_STATUS_HEALTHY {
			healthy++
		}
	}
	fmt.Printf("server lists %d of %d components, %d healthy\n", len(resp.GetComponents()), n, healthy)
	return nil
}

// cpuSample is a process's CPU time and memory at a moment.
type cpuSample struct {
	at             time.Time
	cpu            float64 // seconds of user+system time
	rssKiB, hwmKiB int64
	ok             bool
}

// sampleCPU reads /proc/PID/stat and /proc/PID/status.
func sampleCPU(pid int) cpuSample {
	s := cpuSample{at: time.Now()}
	if pid <= 0 {
		return s
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	// Fields after the command: state is f[0]; utime and stime are the
	// 14th and 15th fields of stat, f[11] and f[12] here.
	if len(f) < 13 {
		return s
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	const clkTck = 100 // USER_HZ on Linux
	s.cpu = (ut + st) / clkTck
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err == nil {
		for _, line := range strings.Split(string(st2), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSuffix(strings.TrimSpace(v), " kB")
			switch k {
			case "VmRSS":
				s.rssKiB, _ = strconv.ParseInt(v, 10, 64)
			case "VmHWM":
				s.hwmKiB, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	s.ok = true
	return s
}
