package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/tap"
	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

// Tap implements LiveService.Tap: the server passes the request on to the
// pipeline's run, which serves taps on its own socket (flowctl run
// --socket, set by the reconciler), and relays the records. The run's
// socket is private to the server's user; the client reaches it only
// through this API, under the server's TLS and token.
func (a *api) Tap(req *controlv1.TapRequest, stream controlv1.LiveService_TapServer) error {
	name := req.GetPipeline()
	if name == "" {
		return status.Error(codes.InvalidArgument, "tap: name the pipeline")
	}
	ctx := stream.Context()
	client, err := a.runClient(ctx, name)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	treq := tap.Request{Points: req.GetPoints(), Types: req.GetTypes(), Where: req.GetWhere(), Limit: int(req.GetLimit())}
	err = tap.Watch(ctx, client, "http://run", treq, func(r tap.Record) error {
		out := &controlv1.TapRecord{Watching: r.Watching, Dropped: r.Dropped, End: r.End}
		if r.Event != nil {
			b, err := json.Marshal(r.Event)
			if err != nil {
				return err
			}
			out.EventJson = b
		}
		return stream.Send(out)
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case strings.Contains(err.Error(), "connection refused"):
		return status.Errorf(codes.FailedPrecondition, "pipeline %q has no run serving taps now (is it running? `flowctl get pipelines %s`)", name, name)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	// The run refused the request (an unknown component, a bad --where):
	// its message is for the user.
	return status.Error(codes.InvalidArgument, err.Error())
}

// runClient is an HTTP client of the socket of pipeline name's run.
func (a *api) runClient(ctx context.Context, name string) (*http.Client, error) {
	if _, err := a.s.opts.Store.GetPipeline(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "pipeline %q not found: `flowctl get pipelines` lists them", name)
		}
		return nil, storeError("live", err)
	}
	sock := a.s.rec.runSocket(name)
	if _, err := os.Stat(sock); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "pipeline %q has no run serving taps now (is it running? `flowctl get pipelines %s`)", name, name)
	}
	return tap.UnixClient(sock), nil
}

// runStatsPath is where a run serves its live counters (cli's liveStatsPath).
const runStatsPath = "/v1/stats"

// Stats implements LiveService.Stats: the run's live counters, relayed.
func (a *api) Stats(ctx context.Context, req *controlv1.LiveStatsRequest) (*controlv1.LiveStatsResponse, error) {
	name := req.GetPipeline()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "stats: name the pipeline")
	}
	client, err := a.runClient(ctx, name)
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://run"+runStatsPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "pipeline %q: its run does not answer now: %v", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, status.Errorf(codes.Unavailable, "pipeline %q: its run's counters: %s %v", name, resp.Status, err)
	}
	return &controlv1.LiveStatsResponse{StatsJson: b}, nil
}
