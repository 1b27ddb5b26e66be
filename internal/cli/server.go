package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/clientconfig"
	"github.com/flowctl/flowctl/internal/server"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/bolt"
	"github.com/flowctl/flowctl/internal/store/boltfile"
	"github.com/flowctl/flowctl/internal/tlsutil"
)

func init() { register("server", newServerCmd) }

// serverOptions are server's flags.
type serverOptions struct {
	listen, dataDir              string
	tlsCert, tlsKey, tlsClientCA string
	childCA, childCert, childKey string
	tokenFile                    string
	insecure                     bool
	grace, heartbeat             time.Duration
	keepRuns                     int
	// uiAddr serves the dashboard (internal/ui) over HTTP; uiTokenFile
	// fixes its token (else a random one, printed).
	uiAddr, uiTokenFile string
}

func newServerCmd(g *globals) *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: keep applied pipelines running",
		Long: `server is the long-running control plane of this machine. It keeps what "flowctl apply"
stores (pipelines, component registrations, run history) in a bbolt file under --data-dir,
and runs every applied pipeline as its own supervised "flowctl run" child process: a crash
in one pipeline never takes another down; a crashed pipeline is restarted with backoff; a
pipeline whose sources are all bounded finishes as Completed and is not started again until
a new revision is applied. Children's output is kept as the pipelines' logs.

On one address it serves the flowctl.control.v1 API (apply, get, describe, logs, delete,
status) and the component registry (flowctl.stream.v1 and the earlier flowctl.v1
control-plane services). Whoever can call it runs commands as this server's user, so:

  - By default it listens on the Unix socket <data-dir>/flowctl.sock, mode 0600 in a 0700
    data dir: only this user (and root) can connect. Clients of the same user find it there
    with no flags; pipeline children report back through it. A socket left by a server that
    died is replaced; a live server answering on it is not.
  - --listen HOST:PORT serves TCP instead. Any local user can reach a loopback port, so TCP
    needs --token-file (a bearer token every call must carry) or --tls-client-ca (mutual
    TLS). An address other machines reach also needs --tls-cert and --tls-key: a token
    must not cross the network in plaintext ("flowctl certs init" makes the files).
    --insecure lifts both rules.
  - On Windows the socket's access follows its directory's ACL (file modes do not apply).

SIGINT/SIGTERM drains every pipeline within --grace (its run is recorded as Stopped) and
closes the store; the next start brings back every applied pipeline. Runs that were in
progress when a server died without that (SIGKILL, a crash) are recorded as Interrupted.

Applying a changed file updates the running child in place: components that did not change
keep running (same process, counters go on), changed ones drain and start again, removed ones
drain and stop, new ones start. Only a change of the dead-letter sink or of the directory the
file is applied from restarts the whole child; apply --dry-run says when.`,
		Example: `  flowctl server
  flowctl server --listen 127.0.0.1:7070 --token-file ~/.config/flowctl/token
  flowctl server --listen 0.0.0.0:7070 --tls-cert server.crt --tls-key server.key --tls-client-ca ca.crt
  flowctl server --data-dir /var/lib/flowctl --grace 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServer(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "address to serve on: unix:PATH, or host:port for TCP (needs a token or mutual TLS, and TLS off loopback) (default: unix:<data-dir>/"+clientconfig.SocketName+")")
	f.StringVar(&o.dataDir, "data-dir", "", "directory of the state file, spec copies and logs (default: $XDG_STATE_HOME/flowctl or ~/.local/state/flowctl)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "server certificate file (turns TLS on)")
	f.StringVar(&o.tlsKey, "tls-key", "", "server key file")
	f.StringVar(&o.tlsClientCA, "tls-client-ca", "", "CA file of client certificates: clients must present one it signed (mutual TLS)")
	f.StringVar(&o.childCA, "tls-child-ca", "", "CA file pipeline children use to verify this server (default: --tls-client-ca, else ca.crt beside --tls-cert)")
	f.StringVar(&o.childCert, "tls-child-cert", "", "client certificate pipeline children present with mutual TLS (default: client.crt beside --tls-cert)")
	f.StringVar(&o.childKey, "tls-child-key", "", "client key of --tls-child-cert (default: client.key beside --tls-cert)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token every call must carry")
	f.BoolVar(&o.insecure, "insecure", false, "serve TCP without TLS or a token (anyone who reaches the address runs commands as this user)")
	f.BoolVar(&o.insecure, "insecure-listen", false, "the former name of --insecure")
	_ = f.MarkHidden("insecure-listen")
	f.DurationVar(&o.grace, "grace", server.DefaultGrace, "how long a stopped pipeline may drain before it is killed")
	f.DurationVar(&o.heartbeat, "heartbeat-interval", server.DefaultHeartbeatInterval, "interval components are told to heartbeat at; a component silent for 3 intervals is UNHEALTHY")
	f.StringVar(&o.uiAddr, "ui", "", "serve the dashboard (pipelines, runs, live graphs, taps, logs) over HTTP on this address (host:port), behind a token printed at start")
	f.StringVar(&o.uiTokenFile, "ui-token", "", "file holding the token the --ui dashboard asks for [a random one, printed at start]")
	f.IntVar(&o.keepRuns, "keep-runs", server.DefaultKeepRuns, "runs of each pipeline the history keeps; older ones that ended are pruned as new ones start (0 keeps all)")
	return cmd
}

// existing returns path when it names a file, else "".
func existing(path string) string {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return path
	}
	return ""
}

func runServer(ctx context.Context, g *globals, o serverOptions) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	fail := func(format string, args ...any) error {
		fmt.Fprintf(g.stderr, "flowctl server: "+format+"\n", args...)
		return &exitError{code: 1}
	}
	if o.grace <= 0 {
		return fail("--grace %s: give a positive duration such as 10s", o.grace)
	}
	if o.uiTokenFile != "" && o.uiAddr == "" {
		return fail("--ui-token is the token of the --ui dashboard: add --ui 127.0.0.1:PORT")
	}
	if o.keepRuns < 0 {
		return fail("--keep-runs %d: give how many runs of each pipeline to keep, or 0 to keep all", o.keepRuns)
	}
	keepRuns := o.keepRuns
	if keepRuns == 0 {
		keepRuns = -1 // server.Options: negative keeps all, 0 is the default
	}
	dataDir := o.dataDir
	if dataDir == "" {
		if dataDir, err = store.DefaultDataDir(); err != nil {
			return fail("%v", err)
		}
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return fail("--data-dir: %v", err)
	}
	listen := o.listen
	if listen == "" {
		listen = "unix:" + clientconfig.SocketPath(dataDir)
	}
	sockPath, isUnix := strings.CutPrefix(listen, "unix:")
	if isUnix {
		if sockPath == "" {
			return fail("--listen unix: names no socket: give unix:PATH")
		}
		if sockPath, err = filepath.Abs(sockPath); err != nil {
			return fail("--listen: %v", err)
		}
		listen = "unix:" + sockPath
	}
	lopts := tlsutil.ListenOptions{
		Addr:     listen,
		TLS:      tlsutil.ServerOptions{CertFile: o.tlsCert, KeyFile: o.tlsKey, ClientCAFile: o.tlsClientCA},
		Insecure: o.insecure,
	}
	if isUnix && lopts.TLS.Enabled() {
		return fail("--tls-cert, --tls-key and --tls-client-ca secure a TCP listener: add --listen HOST:PORT (the Unix socket %s is guarded by its file mode and needs no TLS)", sockPath)
	}
	if o.tokenFile != "" {
		if lopts.Token, err = tlsutil.ReadTokenFile(o.tokenFile); err != nil {
			return fail("--token-file: %v", err)
		}
	}
	gopts, err := tlsutil.GRPCServerOptions(lopts)
	if err != nil {
		return fail("%v", err)
	}
	if o.tokenFile != "" {
		warnTokenFile(g, "flowctl server", "--token-file", o.tokenFile, "drive this server")
	}
	if o.insecure && !isUnix && lopts.Token != "" && !lopts.TLS.Enabled() && !tlsutil.IsLoopback(listen) {
		fmt.Fprintf(g.stderr, "flowctl server: warning: --insecure: the token crosses the network in clear to %s, where anyone on the path can read it and drive this server; add --tls-cert and --tls-key\n", listen)
	}
	// Children report back to this server: with TLS they need a CA that
	// verifies it and, with mutual TLS, a client certificate.
	var childArgs []string
	if lopts.TLS.Enabled() {
		dir := filepath.Dir(o.tlsCert)
		ca := o.childCA
		if ca == "" {
			ca = o.tlsClientCA
		}
		if ca == "" {
			ca = existing(filepath.Join(dir, tlsutil.CACertFile))
		}
		if ca != "" {
			childArgs = append(childArgs, "--report-ca", ca)
		}
		cert, key := o.childCert, o.childKey
		if cert == "" && key == "" {
			cert, key = existing(filepath.Join(dir, tlsutil.ClientCertFile)), existing(filepath.Join(dir, tlsutil.ClientKeyFile))
		}
		if o.tlsClientCA != "" && (cert == "" || key == "") {
			return fail("with --tls-client-ca, pipeline children need a client certificate to report back: give --tls-child-cert and --tls-child-key (flowctl certs init writes client.crt and client.key)")
		}
		if cert != "" && key != "" {
			childArgs = append(childArgs, "--report-cert", cert, "--report-key", key)
		}
	}
	if o.tokenFile != "" {
		childArgs = append(childArgs, "--report-token-file", o.tokenFile)
	}
	// Children run in their pipelines' directories: give them absolute
	// paths.
	for i := 1; i < len(childArgs); i += 2 {
		if abs, err := filepath.Abs(childArgs[i]); err == nil {
			childArgs[i] = abs
		}
	}

	// Listen before opening the store: a live server on the socket is
	// reported at once instead of waiting for the store's lock.
	if tightened, err := server.PrivateDir(dataDir); err != nil {
		return fail("%v", err)
	} else if tightened {
		log.Warn("made the data dir private (0700): it holds the socket, the state and the pipelines' files", "data_dir", dataDir)
	}
	var lis net.Listener
	if isUnix {
		if lis, err = server.ListenSocket(sockPath); err != nil {
			return fail("%v", err)
		}
	} else if lis, err = net.Listen("tcp", listen); err != nil {
		return fail("listen on %s: %v (is another flowctl server running? `flowctl status` asks it)", listen, err)
	}
	defer lis.Close()
	if o.insecure && !isUnix && lopts.Token == "" && o.tlsClientCA == "" {
		fmt.Fprintf(g.stderr, "flowctl server: warning: --insecure: anyone who can connect to %s can run commands as this user\n", lis.Addr())
	}

	st, err := bolt.OpenDir(dataDir, bolt.Options{Logger: log, HashSpec: server.HashSpec})
	if err != nil {
		if errors.Is(err, store.ErrNewerSchema) {
			return fail("%v (upgrade flowctl to read it)", err)
		}
		// A damaged or foreign file: the error names it and says what to
		// do. Nothing is served from it.
		var ferr *boltfile.Error
		if errors.As(err, &ferr) {
			return fail("%v", err)
		}
		return fail("open the data dir %s: %v", dataDir, err)
	}
	defer st.Close()

	// The server's heap is small and mostly short-lived request garbage
	// (thousands of heartbeats a second): fewer GC cycles cut the latency
	// tail at the price of a larger heap. GOGC, when set, decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	srv, err := server.New(server.Options{
		Store: st, DataDir: dataDir, Grace: o.grace, HeartbeatInterval: o.heartbeat, KeepRuns: keepRuns,
		ServerOptions: gopts, ChildReportArgs: childArgs,
		TLS: lopts.TLS.Enabled(), MTLS: o.tlsClientCA != "", Version: version, Logger: log,
	})
	if err != nil {
		return fail("%v", err)
	}
	where := lis.Addr().String()
	if isUnix {
		where = "unix:" + sockPath
	}
	fmt.Fprintf(g.stderr, "flowctl server: serving on %s (data in %s)\n", where, dataDir)
	if o.uiAddr != "" {
		stop, err := serveServerUI(g, o, srv.UIBackend())
		if err != nil {
			return fail("%v", err)
		}
		defer stop()
	}
	if err := srv.Serve(ctx, lis); err != nil {
		return fail("%v", err)
	}
	if err := st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
		return fail("close the store: %v", err)
	}
	fmt.Fprintln(g.stderr, "flowctl server: stopped; every pipeline drained")
	return nil
}
