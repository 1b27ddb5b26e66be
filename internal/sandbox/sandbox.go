package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/drivers/process"
)

// StopGrace is how long a stopped process may take before it is killed.
const StopGrace = 10 * time.Second

// PipelineTimeout is how long the pipeline may take to become ready.
const PipelineTimeout = 60 * time.Second

// ErrAlreadyUp is `up` on a sandbox whose processes run.
var ErrAlreadyUp = errors.New("the sandbox is already up")

// Options are what Up needs besides the file.
type Options struct {
	// Exe is the flowctl binary the pipeline runs in (`Exe run -f ...`).
	Exe string
	// Out receives progress lines and, when a service fails, its log's
	// tail (nil: discarded).
	Out io.Writer
}

// Up starts f's services in dependency order, each healthy before the
// next starts, then the pipeline, every one detached, and returns the
// state. When one fails, what it started is stopped again. On a sandbox
// that is up it returns its state and ErrAlreadyUp.
func Up(ctx context.Context, f *File, o Options) (*State, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	dir := f.StateDir()
	unlock, err := lockSandbox(dir, f.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	old, err := readState(dir)
	if err != nil {
		return nil, err
	}
	if old != nil {
		if old.anyAlive() {
			return old, ErrAlreadyUp
		}
		stopAll(old, o.Out) // left by a crashed up or processes that died: clean up what is left
		os.Remove(filepath.Join(dir, stateFile))
	}
	if err := makeDirs(dir); err != nil {
		return nil, err
	}
	order, err := Order(f.Services)
	if err != nil {
		return nil, err
	}
	st := &State{Name: f.Name, File: f.Path, Started: time.Now().UTC()}
	fail := func(err error, log string) (*State, error) {
		if log != "" {
			printTail(o.Out, log, 20)
		}
		fmt.Fprintf(o.Out, "stopping what was started\n")
		stopAll(st, o.Out)
		os.Remove(filepath.Join(dir, stateFile))
		return nil, err
	}
	for _, s := range order {
		fmt.Fprintf(o.Out, "starting %s (%s)\n", s.Name, s.Kind)
		ss, err := startService(ctx, f, s, st, o.Exe)
		if ss != nil {
			st.Services = append(st.Services, ss)
			if werr := writeState(dir, st); werr != nil && err == nil {
				err = werr
			}
		}
		if err != nil {
			log := ""
			if ss != nil {
				log = ss.Proc.Log
			}
			return fail(fmt.Errorf("service %s: %w", s.Name, err), log)
		}
	}
	if f.Pipeline != "" {
		fmt.Fprintf(o.Out, "starting the pipeline %s\n", relTo(f.Dir, f.Pipeline))
		ps, err := startPipeline(ctx, f, o.Exe, st)
		if ps != nil {
			st.Pipeline = ps
			if werr := writeState(dir, st); werr != nil && err == nil {
				err = werr
			}
		}
		if err != nil {
			log := ""
			if ps != nil {
				log = ps.Log
			}
			return fail(fmt.Errorf("pipeline: %w", err), log)
		}
	}
	return st, writeState(dir, st)
}

// makeDirs creates the sandbox directory (0700) and its logs and data.
func makeDirs(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, "logs"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// openLog opens name's log in the sandbox for appending, with a line
// marking this start.
func openLog(dir, name string) (*os.File, error) {
	lf, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "---- flowctl sandbox up %s: starting %s ----\n", time.Now().UTC().Format(time.RFC3339), name)
	return lf, nil
}

// environ is flowctl's environment with vars added (replacing any of the
// same name).
func environ(vars []Var) []string {
	env := os.Environ()
	for _, v := range vars {
		env = append(env, v.Name+"="+v.Value)
	}
	return env
}

// startService starts s and waits until it is healthy. The returned state
// (non-nil once a process was started) is recorded even on error, so that
// it is stopped.
func startService(ctx context.Context, f *File, s *Service, st *State, exe string) (*ServiceState, error) {
	dir := f.StateDir()
	lf, err := openLog(dir, s.Name)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	ss := &ServiceState{Name: s.Name, Kind: s.Kind, Proc: ProcState{Log: lf.Name()}}
	port := s.Port
	if port == 0 {
		if port, err = process.FreePort("127.0.0.1"); err != nil {
			return nil, err
		}
	}
	ss.Port = port
	ss.Vars = serviceVars(s, port)
	vars := st.Vars()
	var cmd *exec.Cmd
	switch s.Kind {
	case KindPostgres:
		if err := preparePostgres(ctx, dir, s, ss, lf); err != nil {
			return nil, err
		}
		cmd = postgresCmd(ss, port)
		cmd.Env = os.Environ()
	case KindCommand:
		own := ownVars(s, vars, port, ss.Vars)
		args := make([]string, len(s.Command))
		for i, a := range s.Command {
			args[i] = os.Expand(a, lookupIn(own))
		}
		cmd = exec.Command(args[0], args[1:]...)
		cmd.Dir = f.Dir
		cmd.Env = environ(own)
	case KindImage:
		own := ownVars(s, vars, port, ss.Vars)
		spec := ContainerSpec{Sandbox: f.Name, Service: s.Name, Image: s.Image}
		for _, a := range s.Command {
			spec.Argv = append(spec.Argv, os.Expand(a, lookupIn(own)))
		}
		for _, v := range own {
			spec.Env = append(spec.Env, v.Name+"="+v.Value) // the container gets these only, not flowctl's environment
		}
		specPath := filepath.Join(dir, "data", s.Name+".container.json")
		b, err := json.MarshalIndent(spec, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(specPath, b, 0o600); err != nil {
			return nil, err
		}
		if exe == "" {
			return nil, errors.New("no flowctl binary to run the container's helper with")
		}
		cmd = exec.Command(exe, "sandbox", "container", specPath)
		cmd.Dir = f.Dir
		cmd.Env = os.Environ()
	default:
		return nil, fmt.Errorf("%s services are not supported by the sandbox", s.Kind)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	ss.Proc.PID = cmd.Process.Pid
	ss.Proc.Start = processStart(ss.Proc.PID)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	env := environ(append(append([]Var{}, vars...), ss.Vars...))
	err = waitHealthy(ctx, s.Health.Timeout, exited, func(ctx context.Context) error { return check(ctx, f, s, ss, env) })
	if errors.Is(err, errExited) {
		return ss, fmt.Errorf("exited (%v) before it was healthy; its log is %s", cmd.ProcessState, ss.Proc.Log)
	}
	if err != nil {
		return ss, fmt.Errorf("%w; its log is %s", err, ss.Proc.Log)
	}
	if s.Kind == KindPostgres {
		if err := pgEnsureDatabase(ctx, ss, s); err != nil {
			return ss, err
		}
	}
	return ss, nil
}

// ownVars are the variables a command or image service gets: those of
// the services before it, PORT, its own, then its env: (in which ${VAR}
// is replaced by those before it).
func ownVars(s *Service, before []Var, port int, self []Var) []Var {
	own := append(append([]Var{}, before...), Var{"PORT", strconv.Itoa(port)})
	own = append(own, self...)
	for _, k := range sortedEnvKeys(s.Env) {
		own = append(own, Var{k, os.Expand(s.Env[k], lookupIn(own))})
	}
	return own
}

func sortedEnvKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// lookupIn looks a name up in vars (the last one wins), then in the
// environment.
func lookupIn(vars []Var) func(string) string {
	return func(name string) string {
		for i := len(vars) - 1; i >= 0; i-- {
			if vars[i].Name == name {
				return vars[i].Value
			}
		}
		return os.Getenv(name)
	}
}

// startPipeline starts `flowctl run` on the pipeline, its checkpoints in
// the sandbox (so that they outlive down and up), every variable in its
// environment, and waits for its /readyz.
func startPipeline(ctx context.Context, f *File, exe string, st *State) (*ProcState, error) {
	dir := f.StateDir()
	lf, err := openLog(dir, "pipeline")
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	port, err := process.FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(exe, "run", "-f", f.Pipeline, "--state-dir", filepath.Join(dir, "data", "pipeline"), "--http", httpAddr)
	cmd.Dir = f.Dir
	cmd.Env = environ(st.Vars())
	cmd.Stdout, cmd.Stderr = lf, lf
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	ps := &ProcState{PID: cmd.Process.Pid, Start: processStart(cmd.Process.Pid), Log: lf.Name(), HTTP: httpAddr, File: f.Pipeline}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	err = waitHealthy(ctx, PipelineTimeout, exited, func(ctx context.Context) error { return httpOK(ctx, "http://"+httpAddr+"/readyz") })
	if errors.Is(err, errExited) {
		if cmd.ProcessState.Success() {
			// A pipeline whose sources end (a file read without follow)
			// may be done before it was seen ready: that is a success.
			ps.Ended = "completed (" + cmd.ProcessState.String() + ")"
			return ps, nil
		}
		return ps, fmt.Errorf("flowctl run exited (%v) before it was ready; its log is %s", cmd.ProcessState, ps.Log)
	}
	if err != nil {
		return ps, fmt.Errorf("%w; its log is %s", err, ps.Log)
	}
	return ps, nil
}

// Down stops the pipeline, then the services in reverse start order, and
// removes the state file. purge removes the sandbox directory too (data
// and logs). It reports what it did to out.
func Down(f *File, purge bool, out io.Writer) error {
	dir := f.StateDir()
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "sandbox %s is not up\n", f.Name)
		return nil
	}
	unlock, err := lockSandbox(dir, f.Name)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(dir)
	if err != nil {
		return err
	}
	var errs []error
	if st == nil {
		fmt.Fprintf(out, "sandbox %s is not up\n", f.Name)
	} else {
		errs = stopAll(st, out)
		if len(errs) == 0 {
			os.Remove(filepath.Join(dir, stateFile))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w (the state file %s is kept: run down again)", err, filepath.Join(dir, stateFile))
	}
	if purge {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		// .flowctl/sandbox and .flowctl go too when nothing else is in them.
		os.Remove(filepath.Dir(dir))
		os.Remove(filepath.Dir(filepath.Dir(dir)))
		fmt.Fprintf(out, "removed %s (data and logs)\n", relTo(f.Dir, dir))
	} else if _, err := os.Stat(dir); err == nil {
		fmt.Fprintf(out, "data and logs kept in %s (down --purge removes them)\n", relTo(f.Dir, dir))
	}
	return nil
}

// stopAll stops st's pipeline, then its services in reverse start order.
func stopAll(st *State, out io.Writer) []error {
	var errs []error
	if p := st.Pipeline; p != nil {
		reportStop(out, "the pipeline", p, nil, &errs)
	}
	for i := len(st.Services) - 1; i >= 0; i-- {
		s := st.Services[i]
		var first func()
		if s.Kind == KindPostgres {
			first = func() {
				if err := pgStop(s, StopGrace); err != nil {
					fmt.Fprintf(out, "%s: %v; stopping it with signals\n", s.Name, err)
				}
			}
		}
		reportStop(out, s.Name, &s.Proc, first, &errs)
	}
	return errs
}

// reportStop stops p, after first (the service's own way to stop, which
// the signals only back up) when given, and says so.
func reportStop(out io.Writer, name string, p *ProcState, first func(), errs *[]error) {
	if !alive(p.PID, p.Start) {
		fmt.Fprintf(out, "%s was not running\n", name)
		return
	}
	if first != nil {
		first()
	}
	if err := stopProc(p, StopGrace); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", name, err))
		return
	}
	fmt.Fprintf(out, "stopped %s\n", name)
}

// stopProc asks p's process group to stop, waits up to grace, then kills
// it and waits a little more.
func stopProc(p *ProcState, grace time.Duration) error {
	if !alive(p.PID, p.Start) {
		return nil
	}
	if err := signalGroup(p.PID, false); err != nil {
		return err
	}
	if waitGone(p, grace) {
		return nil
	}
	if err := signalGroup(p.PID, true); err != nil {
		return err
	}
	if waitGone(p, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d is still running after SIGKILL", p.PID)
}

// waitGone waits up to d for p to end.
func waitGone(p *ProcState, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for alive(p.PID, p.Start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// Row is one line of the status table.
type Row struct {
	Name    string
	State   string // healthy, unhealthy: why, exited
	Address string
	Vars    []Var
	OK      bool
}

// Status checks every process of the sandbox: alive and healthy. st is
// nil when the sandbox is not up.
func Status(ctx context.Context, f *File) (*State, []Row, error) {
	st, err := readState(f.StateDir())
	if err != nil || st == nil {
		return st, nil, err
	}
	byName := map[string]*Service{}
	for _, s := range f.Services {
		byName[s.Name] = s
	}
	var rows []Row
	for _, ss := range st.Services {
		r := Row{Name: ss.Name, Address: "127.0.0.1:" + strconv.Itoa(ss.Port), Vars: ss.Vars}
		s := byName[ss.Name]
		switch {
		case !alive(ss.Proc.PID, ss.Proc.Start):
			r.State = "exited"
		case s == nil:
			r.State, r.OK = "running (no longer in the sandbox file)", true
		default:
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := check(cctx, f, s, ss, environ(st.Vars()))
			cancel()
			if err != nil {
				r.State = "unhealthy: " + err.Error()
			} else {
				r.State, r.OK = "healthy", true
			}
		}
		rows = append(rows, r)
	}
	if p := st.Pipeline; p != nil {
		r := Row{Name: "pipeline", Address: "http://" + p.HTTP + "/ (metrics, dashboard)"}
		switch {
		case p.Ended != "":
			r.State, r.OK = p.Ended, true
		case !alive(p.PID, p.Start):
			r.State = "exited (see flowctl sandbox logs pipeline)"
		default:
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := httpOK(cctx, "http://"+p.HTTP+"/readyz")
			cancel()
			if err != nil {
				r.State = "not ready: " + err.Error()
			} else {
				r.State, r.OK = "running", true
			}
		}
		rows = append(rows, r)
	}
	return st, rows, nil
}

// relTo is path relative to base when it is below it.
func relTo(base, path string) string {
	if rel, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}
