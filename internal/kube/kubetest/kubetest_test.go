package kubetest

import (
	"context"
	"testing"
	"time"
)

// Start makes the default ServiceAccounts, and its cleanup leaves no
// process behind.
func TestStartStop(t *testing.T) {
	var c *Cluster
	t.Run("cluster", func(t *testing.T) {
		c = Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sa, err := c.Client.Get(ctx, "v1", "ServiceAccount", "default", "default")
		if err != nil {
			t.Fatal(err)
		}
		if sa.Name != "default" {
			t.Errorf("service account %+v", sa.Meta)
		}
		if ns := c.Namespace(t, "team"); ns != "team" {
			t.Errorf("Namespace returned %q", ns)
		}
		if _, err := c.Client.Get(ctx, "v1", "ServiceAccount", "team", "default"); err != nil {
			t.Error(err)
		}
	})
	if c == nil {
		t.SkipNow() // Start skipped (or failed, which the subtest reported)
	}
	if len(c.procs) != 2 {
		t.Fatalf("%d processes recorded, want 2", len(c.procs))
	}
	for _, p := range c.procs {
		select {
		case <-p.exited:
		default:
			t.Errorf("%s still running after the test's cleanup", p.name)
		}
	}
}
