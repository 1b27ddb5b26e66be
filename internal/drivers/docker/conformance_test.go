package docker_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/drivers/docker/dockertest"
	"github.com/flowctl/flowctl/internal/drivers/driverstest"
)

// TestDriverConformance runs the suite every driver passes, with the
// suite's own test program in a FROM-scratch image as the task.
func TestDriverConformance(t *testing.T) {
	needDocker(t)
	prog := driverstest.BuildProgram(t, t.TempDir(), "linux", runtime.GOARCH)
	tag := dockertest.Tag("driverstest")
	ctx := context.Background()
	if err := dockertest.BuildScratchImage(ctx, dockerCli, tag, prog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dockertest.RemoveImage(context.Background(), dockerCli, tag); err != nil {
			t.Logf("remove %s: %v", tag, err)
		}
	})
	driverstest.Run(t, driver, func(t *testing.T, args ...string) drivers.TaskConfig {
		return drivers.TaskConfig{Image: tag, ImageArgs: args}
	})
}
