package compose

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestGoldenComposeFilesConfig runs docker-compose 1.29's own `config -q`
// on every Compose file internal/translate keeps as a golden (the
// translations without --tls; internal/translate's
// TestTranslateDockerComposeConfig checks the --tls ones). It needs no
// Docker daemon.
func TestGoldenComposeFilesConfig(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose is not installed")
	}
	goldens, err := filepath.Glob("../../internal/translate/testdata/golden/*.compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(goldens) < 15 {
		t.Fatalf("found only %d golden Compose files", len(goldens))
	}
	// The check has teeth: a top-level name: (1.29 rejects it) fails.
	bad := filepath.Join(t.TempDir(), "bad.compose.yml")
	if err := os.WriteFile(bad, []byte("name: x\nservices:\n  a:\n    image: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := composeConfig(bad); err == nil {
		t.Fatalf("docker-compose config took a top-level name:\n%s", out)
	}
	for _, g := range goldens {
		t.Run(filepath.Base(g), func(t *testing.T) {
			t.Parallel()
			if out, err := composeConfig(g); err != nil {
				t.Fatalf("docker-compose -f %s config -q: %v\n%s", g, err, out)
			}
		})
	}
}

// composeConfig runs `docker-compose -f FILE config -q` in FILE's
// directory, with no daemon.
func composeConfig(file string) ([]byte, error) {
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", "-p", "flowctlgolden", "-f", filepath.Base(file), "config", "-q")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent")
	return cmd.CombinedOutput()
}
