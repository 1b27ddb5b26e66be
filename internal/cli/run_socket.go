package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/server"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/tap"
)

// Every `flowctl run` serves its own small HTTP API (taps, live counters) on a
// Unix socket only its user can reach (0600 in a 0700 directory, as the
// server's): <data-dir>/runs/<pipeline>.sock by default, or --socket. A
// socket carries no token and no TLS because nobody else can connect;
// the flowctl server reaches the runs it started through theirs.

// runSocketDir is where runs put their sockets by default.
func runSocketDir() (string, error) {
	dir, err := store.DefaultDataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "runs"), nil
}

// defaultRunSocket is the socket of a run of pipeline started without
// --socket.
func defaultRunSocket(pipeline string) (string, error) {
	dir, err := runSocketDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, pipeline+".sock"), nil
}

// runSocket is a run's served socket.
type runSocket struct {
	path string
	srv  *http.Server
	done chan error
}

// serveRunSocket serves the run's API for e on path. A live run of the
// same pipeline already serving there is not an error: this run serves
// no socket, and a warning says so.
func serveRunSocket(path, name string, hub *tap.Hub, e *engine.Engine, ext *external.Manager, log *slog.Logger) (*runSocket, error) {
	ln, err := server.ListenSocket(path)
	if errors.Is(err, server.ErrServerRunning) {
		log.Debug("another run of this pipeline serves its taps; this one serves none (give --socket PATH to serve both)", "socket", path)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.Handle(tap.Path, tap.Handler(hub, func() map[string]flow.Role { return engineComponents(e) }))
	mux.Handle(liveStatsPath, liveStatsHandler(name, e, ext))
	s := &runSocket{path: path, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// engineComponents lists the components e runs now (after reloads too).
func engineComponents(e *engine.Engine) map[string]flow.Role {
	out := map[string]flow.Role{}
	for _, n := range e.Graph().Nodes() {
		out[n.Name] = n.Role
	}
	return out
}

// Close stops serving; streams in flight end.
func (s *runSocket) Close() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

// unixHTTPClient is an HTTP client of a run's socket.
func unixHTTPClient(path string) *http.Client { return tap.UnixClient(path) }
