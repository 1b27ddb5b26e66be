package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/metrics"
	"github.com/flowctl/flowctl/internal/tap"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/ui"
)

// The dashboard (internal/ui) is served by --http next to /metrics,
// /healthz and /readyz, which stay open (counters only). The page and
// its API show event data (the tap), so they need a token: a random one
// made at start and printed once, as the URL to open, or --http-token's.

// httpHandler is what --http serves: the metrics endpoints, and the
// dashboard behind token.
func httpHandler(name, token string, hub *tap.Hub, e *engine.Engine, ext *external.Manager) (http.Handler, error) {
	dash, err := ui.Handler(ui.Options{
		Token: token,
		Graph: func() *graph.Graph { return e.Graph() },
		Stats: liveStatsHandler(name, e, ext),
		Tap:   tap.Handler(hub, func() map[string]flow.Role { return engineComponents(e) }),
	})
	if err != nil {
		return nil, err
	}
	m := metrics.Handler(name, e)
	mux := http.NewServeMux()
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		mux.Handle(p, m)
	}
	mux.Handle("/", dash)
	return mux, nil
}

// dashboardToken is --http-token's token, or a new random one; printed
// says whether the URL may show it (a token of one's own file is not
// written to a log).
func dashboardToken(file string) (token string, fromFile bool, err error) {
	if file != "" {
		tok, err := ui.ReadTokenFile(file)
		return tok, err == nil, err
	}
	tok, err := ui.NewToken()
	return tok, false, err
}

// warnTokenFile warns on stderr when users other than this one may read
// or change the token file given to flag: whoever reads it can do what the
// token guards (what).
func warnTokenFile(g *globals, prefix, flag, path, what string) {
	if why := tlsutil.TokenFileExposure(path); why != "" {
		fmt.Fprintf(g.stderr, "%s: warning: %s %s: %s, and with the token %s: chmod 600 %s\n", prefix, flag, path, why, what, path)
	}
}

// dashboardURL is the address to open for the dashboard served at addr
// (the listener's: an unspecified host becomes 127.0.0.1).
func dashboardURL(addr, token string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	u := "http://" + addr + "/"
	if token != "" {
		u += "?token=" + token
	}
	return u
}

// serveServerUI serves `flowctl server --ui`: the dashboard of every
// pipeline, behind its token; stop ends it.
func serveServerUI(g *globals, o serverOptions, b ui.Backend) (stop func(), err error) {
	token, fromFile, err := dashboardToken(o.uiTokenFile)
	if err != nil {
		return nil, fmt.Errorf("--ui-token: %w", err)
	}
	if fromFile {
		warnTokenFile(g, "flowctl server", "--ui-token", o.uiTokenFile, "open the dashboard and its taps")
	}
	h, err := ui.ServerHandler(ui.ServerOptions{Token: token, Backend: b})
	if err != nil {
		return nil, err
	}
	srv, err := metrics.ServeHandler(o.uiAddr, h)
	if err != nil {
		return nil, fmt.Errorf("--ui: %w", err)
	}
	if fromFile {
		fmt.Fprintf(g.stderr, "flowctl server: dashboard: %s (add ?token= and the token in %s)\n", dashboardURL(srv.Addr(), ""), o.uiTokenFile)
	} else {
		fmt.Fprintf(g.stderr, "flowctl server: dashboard: %s\n", dashboardURL(srv.Addr(), token))
	}
	if !tlsutil.IsLoopback(o.uiAddr) {
		fmt.Fprintf(g.stderr, "flowctl server: warning: --ui %s serves the dashboard over plain HTTP to other machines: its token crosses the network in clear; use --ui 127.0.0.1:PORT and an SSH tunnel\n", o.uiAddr)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	}, nil
}
