package state

import (
	"os"
	"path/filepath"
	"runtime"
)

// userStateBase is the per-user directory for state that outlives a run:
// ~/.local/state on Linux and the BSDs (XDG), ~/Library/Application Support
// on macOS, %LocalAppData% on Windows.
func userStateBase() (string, error) {
	switch runtime.GOOS {
	case "darwin", "ios":
		return os.UserConfigDir() // ~/Library/Application Support
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return d, nil
		}
		return os.UserConfigDir()
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state"), nil
}
