package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pgPrograms are the PostgreSQL programs the sandbox runs.
var pgPrograms = []string{"initdb", "postgres", "pg_ctl", "pg_isready", "psql"}

// findPostgres returns the directory of the machine's PostgreSQL server
// programs: the one on PATH, else the newest of Debian's
// /usr/lib/postgresql/VERSION/bin (which Debian keeps off PATH).
func findPostgres() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if hasAll(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if hasAll(d) {
			return d, nil
		}
	}
	hint := "install PostgreSQL's server (Debian: apt-get install postgresql; macOS: brew install postgresql) or put its bin directory on PATH"
	return "", fmt.Errorf("PostgreSQL's programs (%s) were not found on PATH or in /usr/lib/postgresql/*/bin: %s", strings.Join(pgPrograms, ", "), hint)
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func hasAll(dir string) bool {
	for _, p := range pgPrograms {
		name := p
		if runtime.GOOS == "windows" {
			name += ".exe"
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}

// pgCmd is a PostgreSQL program of ss's installation, run as its account.
func pgCmd(ctx context.Context, ss *ServiceState, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(ss.PGBin, program), args...)
	cmd.Dir = ss.PGData
	if ss.UID != 0 {
		runAs(cmd, &account{name: ss.User, uid: ss.UID, gid: ss.GID})
	}
	return cmd
}

// preparePostgres finds the programs, creates the data directory with
// initdb the first time (trust authentication: the server listens on the
// loopback interface only, for development) and fills ss. log receives
// initdb's output.
func preparePostgres(ctx context.Context, sandboxDir string, s *Service, ss *ServiceState, log *os.File) error {
	bin, err := findPostgres()
	if err != nil {
		return err
	}
	acct, err := serviceAccount("postgres")
	if err != nil {
		return err
	}
	ss.PGBin = bin
	ss.PGData = filepath.Join(sandboxDir, "data", s.Name)
	if acct != nil {
		ss.UID, ss.GID, ss.User = acct.uid, acct.gid, acct.name
	}
	if err := os.MkdirAll(ss.PGData, 0o700); err != nil {
		return err
	}
	if acct != nil {
		if err := chown(ss.PGData, acct); err != nil {
			return fmt.Errorf("give %s to user %s: %w", ss.PGData, acct.name, err)
		}
		if err := reachable(filepath.Dir(ss.PGData), filepath.Dir(filepath.Dir(sandboxDir)), acct); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(ss.PGData, "PG_VERSION")); err == nil {
		return nil // initialised by an earlier up: its data is kept
	}
	fmt.Fprintf(log, "---- flowctl sandbox: initdb %s ----\n", ss.PGData)
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := pgCmd(ictx, ss, "initdb", "-D", ss.PGData, "-U", s.User, "--auth=trust", "--encoding=UTF8", "--no-instructions")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb %s: %w (its output is in %s)", ss.PGData, err, log.Name())
	}
	return nil
}

// postgresCmd is the server of ss on port: TCP on 127.0.0.1 only, no Unix
// socket (its path could be too long inside the sandbox directory).
func postgresCmd(ss *ServiceState, port int) *exec.Cmd {
	return pgCmd(context.Background(), ss, "postgres", "-D", ss.PGData, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=")
}

// pgReady is a real connection to the server: pg_isready.
func pgReady(ctx context.Context, ss *ServiceState, s *Service) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := pgCmd(cctx, ss, "pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(ss.Port), "-U", s.User, "-d", "postgres", "-t", "3")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_isready on 127.0.0.1:%d: %w", ss.Port, err)
	}
	return nil
}

// pgEnsureDatabase creates s's database unless it exists.
func pgEnsureDatabase(ctx context.Context, ss *ServiceState, s *Service) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(ss.Port), "-U", s.User}
	// The name is a plain SQL identifier (checked when the file was read).
	q := pgCmd(cctx, ss, "psql", append(conn, "-d", "postgres", "-X", "-v", "ON_ERROR_STOP=1", "-tAc",
		"SELECT count(*) FROM pg_database WHERE datname = '"+s.Database+"'")...)
	out, err := q.Output()
	if err != nil {
		return fmt.Errorf("look for database %s: %w", s.Database, exitText(err))
	}
	if strings.TrimSpace(string(out)) == "1" {
		return nil
	}
	c := pgCmd(cctx, ss, "psql", append(conn, "-d", "postgres", "-X", "-v", "ON_ERROR_STOP=1", "-qc", `CREATE DATABASE "`+s.Database+`"`)...)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("create database %s: %w: %s", s.Database, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// pgStop stops the server with pg_ctl's fast mode (open sessions are
// ended, the data is written out), waiting up to grace.
func pgStop(ss *ServiceState, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace+5*time.Second)
	defer cancel()
	cmd := pgCmd(ctx, ss, "pg_ctl", "stop", "-D", ss.PGData, "-m", "fast", "-w", "-t", strconv.Itoa(int(grace.Seconds())))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// exitText adds a failed program's standard error to err.
func exitText(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
