package node

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/state"
)

// A sink node's checkpoints cannot cut its output back as `flowctl run`
// does: its events come from upstream nodes, not from a source of its own
// that replays, so the engine records no position for it. Started again
// (a container restarted, a service recreated), a sink that truncates on
// a first run would erase everything written before. So a node remembers
// in its state directory that it ran, and a sink with `mode:
// truncate|append` (file) appends when it runs again: the batches its
// upstream sends again after the restart may then be written twice —
// the duplicates docs/node.md already allows — but nothing is erased.

// AppendsOnRestart reports whether c is a sink a node must switch to
// append when it runs again: a built-in whose spec has a mode field that
// can be "append". Translators give such a node a durable state
// directory, so that "it ran before" survives the container.
func AppendsOnRestart(c *spec.Component, reg *flow.Registry) bool {
	if reg == nil || c.Runner != spec.RunBuiltin || c.Role != flow.RoleSink {
		return false
	}
	cs, err := reg.Lookup(flow.RoleSink, c.Type)
	if err != nil {
		return false
	}
	for _, f := range cs.Fields {
		if f.Name == "mode" && slices.Contains(f.Enum, "append") {
			return true
		}
	}
	return false
}

// ranMarker is the file that says a node of this pipeline and component
// ran with this state directory before: next to the node's state store,
// named as it is (state.Dir), so that a name with a '/', a ':' or a
// backslash is one path element; any other name gives the path earlier
// versions wrote, so a node upgraded in place still finds its marker.
func ranMarker(stateRoot, pipeline, component string) string {
	return state.Dir(stateRoot, pipeline+"."+component) + ".ran"
}

// appendIfRanBefore switches self to mode: append when the marker exists
// (logging why), and then writes the marker for the next start.
func appendIfRanBefore(self *spec.Component, reg *flow.Registry, stateRoot, pipeline string, log *slog.Logger) error {
	if !AppendsOnRestart(self, reg) {
		return nil
	}
	marker := ranMarker(stateRoot, pipeline, self.Name)
	_, err := os.Stat(marker)
	switch {
	case err == nil:
		if mode, _ := self.Config["mode"].(string); mode != "append" && self.Config["append"] != true {
			cfg := maps.Clone(self.Config)
			delete(cfg, "append")
			cfg["mode"] = "append"
			self.Config = cfg
			log.Warn("this sink node ran before with this state directory: appending to its output instead of truncating it; batches sent again after the restart may be written twice",
				"component", self.Name)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("state of node %q: %w", self.Name, err)
	}
	if err := os.MkdirAll(stateRoot, 0o700); err != nil {
		return fmt.Errorf("state of node %q: %w", self.Name, err)
	}
	if err := os.WriteFile(marker, []byte("a node of this component ran with this state directory; on its next start its sink appends\n"), 0o600); err != nil {
		return fmt.Errorf("state of node %q: %w", self.Name, err)
	}
	return nil
}
