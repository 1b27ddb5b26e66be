package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"time"
)

// pollInterval is how often a health check is tried while waiting.
const pollInterval = 100 * time.Millisecond

// errExited is a process that ended while it was waited for.
var errExited = errors.New("exited")

// check runs s's health check once against the service ss.
func check(ctx context.Context, f *File, s *Service, ss *ServiceState, env []string) error {
	if s.Kind == KindPostgres {
		return pgReady(ctx, ss, s)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ss.Port))
	switch {
	case s.Health.HTTP != "":
		return httpOK(ctx, "http://"+addr+s.Health.HTTP)
	case len(s.Health.Command) > 0:
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, s.Health.Command[0], s.Health.Command[1:]...)
		cmd.Dir, cmd.Env = f.Dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("health command %v: %w: %s", s.Health.Command, err, tail(out, 200))
		}
		return nil
	default:
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// httpOK gets url and wants a 2xx answer.
func httpOK(ctx context.Context, url string) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// waitHealthy tries probe until it succeeds, exited is closed (the
// process ended), ctx ends, or timeout passes.
func waitHealthy(ctx context.Context, timeout time.Duration, exited <-chan struct{}, probe func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = probe(ctx); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %s: %v", timeout, last)
		}
		t := time.NewTimer(pollInterval)
		select {
		case <-exited:
			t.Stop()
			return errExited
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
