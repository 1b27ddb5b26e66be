package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/flowctl/flowctl/internal/tap"
)

// liveRunSocket is the socket of a `flowctl run` of pipeline on this
// machine: explicit (as given to its --socket) when set, else the default
// socket of a run of this user when it exists; "" when there is none.
// flowctl tap and flowctl test --record find a run the same way.
func liveRunSocket(pipe, explicit string) string {
	if explicit != "" {
		return explicit
	}
	if def, err := defaultRunSocket(pipe); err == nil {
		if _, err := os.Stat(def); err == nil {
			return def
		}
	}
	return ""
}

// watchRun streams a tap of the run of pipe serving on sock and calls fn
// for every record until the stream ends, fn fails or ctx is done. A
// default socket nobody answers on (the run ended without removing it)
// is reported as such.
func watchRun(ctx context.Context, pipe, sock string, explicit bool, req tap.Request, fn func(tap.Record) error) error {
	err := tap.Watch(ctx, unixHTTPClient(sock), "http://run", req, fn)
	if err == nil || ctx.Err() != nil {
		return nil
	}
	if !explicit && isNoListener(err) {
		return fmt.Errorf("no run of pipeline %q answers on %s (it ended?); a pipeline started by `flowctl run` serves its taps there", pipe, sock)
	}
	return fmt.Errorf("tap %s: %w", pipe, err)
}
