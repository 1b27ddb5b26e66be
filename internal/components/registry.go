package components

import "github.com/flowctl/flowctl/internal/flow"

// builtins is filled by each component file's init.
var builtins []*flow.ComponentSpec

// Register adds every built-in to r. It fails on a duplicate.
func Register(r *flow.Registry) error {
	for _, s := range builtins {
		if err := r.Register(s); err != nil {
			return err
		}
	}
	return nil
}

// NewRegistry returns a registry holding every built-in.
func NewRegistry() *flow.Registry {
	r := flow.NewRegistry()
	if err := Register(r); err != nil {
		panic(err)
	}
	return r
}
