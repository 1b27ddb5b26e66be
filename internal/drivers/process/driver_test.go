package process

import (
	"runtime"
	"testing"

	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/drivers/driverstest"
)

func TestDriverConformance(t *testing.T) {
	prog := driverstest.BuildProgram(t, t.TempDir(), runtime.GOOS, runtime.GOARCH)
	driverstest.Run(t, Driver{}, func(t *testing.T, args ...string) drivers.TaskConfig {
		return drivers.TaskConfig{Argv: append([]string{prog}, args...)}
	})
}

func TestDriverRegistered(t *testing.T) {
	d, err := drivers.Lookup("process")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(Driver); !ok {
		t.Errorf("Lookup(process) = %T", d)
	}
}

func TestDriverRefusesImage(t *testing.T) {
	if _, err := (Driver{}).Start(t.Context(), drivers.TaskConfig{Name: "x", Image: "alpine", Argv: []string{"true"}}); err == nil {
		t.Fatal("the process driver started an image")
	}
}
