package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// DefaultDataDir returns where `flowctl server` keeps its state when no
// --data-dir is given: $XDG_STATE_HOME/flowctl, or ~/.local/state/flowctl
// when XDG_STATE_HOME is unset or not absolute. It creates nothing.
func DefaultDataDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "flowctl"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the default data dir (set --data-dir or XDG_STATE_HOME): %w", err)
	}
	return filepath.Join(home, ".local", "state", "flowctl"), nil
}

// InterruptRuns marks every run still in RunStarted as RunInterrupted with
// reason and EndedAt at, and returns the runs it changed. A server calls it
// once at start, before starting anything: runs found Started then belong
// to a server that died.
func InterruptRuns(ctx context.Context, s Store, reason string, at time.Time) ([]Run, error) {
	runs, err := s.ListRuns(ctx, "", 0)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	var changed []Run
	var errs []error
	for _, r := range runs {
		if r.State != RunStarted {
			continue
		}
		r.State = RunInterrupted
		r.Reason = reason
		r.EndedAt = at
		if err := s.UpdateRun(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("mark run %s/%d interrupted: %w", r.Pipeline, r.ID, err))
			continue
		}
		changed = append(changed, r)
	}
	return changed, errors.Join(errs...)
}
