package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/bolt"
)

// TestServerRefusesDamagedStore starts the real binary on a data dir whose
// store is damaged: it must exit 1 with one clear line naming the file,
// before it serves anything, and without a panic.
func TestServerRefusesDamagedStore(t *testing.T) {
	bin := flowctlBinary(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		says   string
	}{
		{"pages overwritten", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			const ps = 4096
			for off := 2 * ps; off+64 <= len(b); off += ps {
				for i := 16; i < 64; i++ {
					b[off+i] ^= 0xff
				}
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is damaged"},
		{"zero-length", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "is empty (0 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			st, err := bolt.OpenDir(dataDir, bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 30 {
				p := store.Pipeline{Name: fmt.Sprintf("p%02d", i), Hash: "h", Spec: []byte(strings.Repeat("name: x\n", 100))}
				if _, err := st.PutPipeline(context.Background(), p, store.AnyRevision); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dataDir, bolt.FileName)
			tc.damage(t, path)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Private already, so the server has nothing to warn about.
			if err := os.Chmod(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, bin, "server", "--data-dir", dataDir)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("server exited with %v; want exit status 1. Output:\n%s", err, out)
			}
			msg := string(out)
			for _, want := range []string{
				"flowctl server: server store " + path + ": " + tc.says,
				"move it aside or restore it from a backup; flowctl will not overwrite it",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("output does not say %q:\n%s", want, msg)
				}
			}
			for _, bad := range []string{"serving on", "panic", "goroutine "} {
				if strings.Contains(msg, bad) {
					t.Errorf("output says %q:\n%s", bad, msg)
				}
			}
			if n := strings.Count(strings.TrimSpace(msg), "\n"); n != 0 {
				t.Errorf("output has %d lines, want one:\n%s", n+1, msg)
			}
		})
	}
}
