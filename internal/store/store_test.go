package store_test

import (
	"path/filepath"
	"testing"

	"github.com/flowctl/flowctl/internal/store"
)

func TestDefaultDataDir(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		name, xdg, want string
	}{
		{"xdg set", "/var/lib/me", "/var/lib/me/flowctl"},
		{"xdg unset", "", filepath.Join(home, ".local", "state", "flowctl")},
		{"xdg relative is ignored", "rel/state", filepath.Join(home, ".local", "state", "flowctl")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			got, err := store.DefaultDataDir()
			if err != nil || got != tc.want {
				t.Fatalf("DefaultDataDir() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRunStateTerminal(t *testing.T) {
	for s, want := range map[store.RunState]bool{
		store.RunStarted: false, "": false, store.RunCompleted: true, store.RunStopped: true,
		store.RunFailed: true, store.RunInterrupted: true,
	} {
		if got := s.Terminal(); got != want {
			t.Errorf("%q.Terminal() = %v, want %v", s, got, want)
		}
	}
}
