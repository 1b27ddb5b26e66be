package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the name of the state file in the sandbox directory. It
// exists while the sandbox is up (from the first process `up` starts to
// the end of `down`).
const stateFile = "state.json"

// State is what `up` started, for the commands that come after it.
type State struct {
	Name     string          `json:"name"`
	File     string          `json:"file"`
	Started  time.Time       `json:"started"`
	Services []*ServiceState `json:"services"` // in start order
	Pipeline *ProcState      `json:"pipeline,omitempty"`
}

// ProcState is one detached process: its pid, the process's start time
// where the system tells it (so that a pid used again by another process
// is not taken for ours), its log file.
type ProcState struct {
	PID   int    `json:"pid"`
	Start string `json:"start,omitempty"`
	Log   string `json:"log"`
	HTTP  string `json:"http,omitempty"` // the pipeline's --http address
	File  string `json:"file,omitempty"` // the pipeline file
	// Ended says how the process ended when that was seen (a pipeline
	// that ran to its end while up waited for it).
	Ended string `json:"ended,omitempty"`
}

// ServiceState is one service that `up` started.
type ServiceState struct {
	Name string    `json:"name"`
	Kind Kind      `json:"kind"`
	Proc ProcState `json:"process"`
	Port int       `json:"port"`
	Vars []Var     `json:"vars"`

	// PostgreSQL: its data directory, the directory of its programs, and
	// the account it runs as (when flowctl runs as root).
	PGData string `json:"pgdata,omitempty"`
	PGBin  string `json:"pgbin,omitempty"`
	UID    int    `json:"uid,omitempty"`
	GID    int    `json:"gid,omitempty"`
	User   string `json:"user,omitempty"`
}

// readState reads dir's state file; (nil, nil) when there is none.
func readState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it after stopping what it lists by hand)", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// writeState replaces dir's state file atomically.
func writeState(dir string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// anyAlive reports whether a process of st still runs.
func (st *State) anyAlive() bool {
	if st.Pipeline != nil && alive(st.Pipeline.PID, st.Pipeline.Start) {
		return true
	}
	for _, s := range st.Services {
		if alive(s.Proc.PID, s.Proc.Start) {
			return true
		}
	}
	return false
}

// Vars are every service's variables, in start order.
func (st *State) Vars() []Var {
	var out []Var
	for _, s := range st.Services {
		out = append(out, s.Vars...)
	}
	return out
}
