package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// User and Password are the superuser initdb creates. Connections over
// TCP need the password (scram-sha-256), so a test can try a wrong one.
const (
	User     = "flowctl"
	Password = "flowctl-test"
)

// Server is a running PostgreSQL.
type Server struct {
	// Dir holds the data directory, the socket and the log.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int

	stdin io.WriteCloser
	cmd   *exec.Cmd
	exit  chan struct{} // closed when the server's shell exited
	owned bool          // Dir was created by Start and is removed by Stop
	// settings are extra "name=value" server settings (-c), after the
	// defaults, so they override them.
	settings []string
}

// Logical are the settings logical replication needs (a source reading
// changes through a replication slot). Start enables them by default;
// StartWith(ctx, "wal_level=replica") starts a server without them.
var Logical = []string{"wal_level=logical", "max_replication_slots=20", "max_wal_senders=20"}

// ErrNotInstalled is returned by Start when no PostgreSQL server binaries
// are found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin — install them (Debian: apt-get install postgresql)")

// BinDir returns the directory holding initdb and postgres: the one on
// PATH, else the newest /usr/lib/postgresql/<version>/bin.
func BinDir() (string, error) {
	if runtime.GOOS == "windows" {
		return "", ErrNotInstalled
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "postgres")) && isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Start runs initdb and starts a server in a new temporary directory.
// ctx bounds initdb and the readiness wait (give it 60 s on a busy
// machine). Stop stops the server and removes the directory.
// The server has wal_level=logical (see Logical).
func Start(ctx context.Context) (*Server, error) {
	return StartWith(ctx)
}

// StartWith is Start with extra server settings, each "name=value"
// (passed as -c name=value after the defaults, so they win), e.g.
// StartWith(ctx, "wal_level=replica").
func StartWith(ctx context.Context, settings ...string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "flowctl-pgtest")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, owned: true, exit: make(chan struct{}), settings: append(append([]string(nil), Logical...), settings...)}
	if err := s.start(ctx, bin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// asPostgres returns the command prefix that runs a program as the
// postgres system user when this process is root (postgres refuses to
// run as root), and chowns dir to that user.
func asPostgres(dir string) ([]string, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as another user, and there is no `postgres` user (%v) — create one (useradd -r postgres) or run the tests as a normal user", err)
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as the postgres user, and runuser (util-linux) is not installed: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return []string{runuser, "-u", "postgres", "--"}, nil
}

func (s *Server) start(ctx context.Context, bin string) error {
	prefix, err := asPostgres(s.Dir)
	if err != nil {
		return err
	}
	data := filepath.Join(s.Dir, "data")
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(Password+"\n"), 0o644); err != nil {
		return err
	}
	// Local (socket) connections are trusted; TCP needs the password.
	initdb := append(append([]string(nil), prefix...), filepath.Join(bin, "initdb"),
		"-D", data, "-U", User, "--pwfile", pwfile, "-E", "UTF8", "--locale", "C",
		"--auth-local", "trust", "--auth-host", "scram-sha-256", "--no-sync")
	cmd := exec.CommandContext(ctx, initdb[0], initdb[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A free port can be taken between our check and postgres' bind: try
	// a few.
	for try := 0; ; try++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		err = s.run(ctx, bin, prefix, data, port)
		if err == nil || try == 2 || ctx.Err() != nil {
			return err
		}
	}
}

// The shell that runs postgres and stops it (SIGINT: fast shutdown) when
// its standard input closes, i.e. when the test process is gone; then it
// removes the server's directory ($0).
const watch = `"$@" & pid=$!
trap 'kill -INT $pid 2>/dev/null' TERM
cat >/dev/null
kill -INT $pid 2>/dev/null
wait $pid
rm -rf "$0"`

func (s *Server) run(ctx context.Context, bin string, prefix []string, data string, port int) error {
	logPath := filepath.Join(s.Dir, "postgres.log")
	args := append(append([]string(nil), prefix...), "/bin/sh", "-c", watch, s.Dir, filepath.Join(bin, "postgres"),
		"-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", s.Dir,
		// Tests do not survive a power loss anyway: skip the fsyncs.
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=50")
	for _, kv := range s.settings {
		args = append(args, "-c", kv)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	s.cmd, s.stdin, s.exit, s.Port = cmd, stdin, exit, port

	// Ready when a connection succeeds; bounded by ctx and a count.
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	var last error
	for i := 0; i < 1200; i++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, s.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		last = err
		select {
		case <-exit:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited before it was ready:\n%s", tail(string(log), 20))
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("postgres not ready: %w (last: %v)", ctx.Err(), last)
		case <-ticker.C:
		}
	}
	s.Stop()
	return fmt.Errorf("postgres not ready after 1200 attempts: %v", last)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the libpq URL of database db as the superuser, over TCP.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates database name and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

// Stop stops the server (fast shutdown), waits for it at most 30 s, and
// removes the directory Start created. It is safe to call twice.
func (s *Server) Stop() error {
	var err error
	if s.stdin != nil {
		s.stdin.Close()
		s.stdin = nil
		select {
		case <-s.exit:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			err = errors.New("postgres did not stop within 30 s")
		}
	}
	if s.owned {
		os.RemoveAll(s.Dir)
		s.owned = false
	}
	return err
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
	dbSeq      int
	dbMu       sync.Mutex
)

// Shared returns the test package's server, starting it on first use; it
// runs until the test process ends (the watching shell stops it). Without
// PostgreSQL the test is skipped, or fails when CI=true (CI installs it).
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		shared, sharedErr = Start(ctx)
	})
	if sharedErr != nil {
		if errors.Is(sharedErr, ErrNotInstalled) && os.Getenv("CI") != "true" {
			t.Skip(sharedErr)
		}
		t.Fatal(sharedErr)
	}
	return shared
}

// NewDatabase creates a fresh database on the shared server for test t
// and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	dbMu.Lock()
	dbSeq++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq)
	dbMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := s.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
