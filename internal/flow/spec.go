package flow

import (
	"fmt"
	"sort"
	"sync"
)

// Config is a component's config as decoded from the pipeline file: maps
// are map[string]any, integers int, other numbers float64, lists []any.
type Config map[string]any

// FieldType names the type of a config field. It drives validation and the
// JSON Schema.
type FieldType string

// Field types.
const (
	TypeString   FieldType = "string"
	TypeInt      FieldType = "int"
	TypeNumber   FieldType = "number"
	TypeBool     FieldType = "bool"
	TypeDuration FieldType = "duration" // a Go duration string such as "250ms"
	TypeCEL      FieldType = "cel"      // a CEL expression (a string)
	TypeStrings  FieldType = "strings"  // a list of strings
	TypeObject   FieldType = "object"   // nested Fields, or any map when Fields is empty
	TypeArray    FieldType = "array"    // a list of Items
	TypeMap      FieldType = "map"      // string keys, values of Items (or anything)
	TypeAny      FieldType = "any"
)

// Field describes one config field of a component.
type Field struct {
	Name        string
	Type        FieldType
	Description string
	Required    bool
	Default     any
	Enum        []string
	Example     any
	// Fields are the members of an object.
	Fields []Field
	// Items describes the elements of an array or the values of a map.
	Items *Field
	// CELResult is the type a CEL field must return: "bool", "string",
	// "int", "map" or "" for any.
	CELResult string
}

// ComponentSpec is a built-in component: its config spec and constructor.
type ComponentSpec struct {
	Role    Role
	Name    string // as written in `type:`, e.g. "file"
	Summary string
	// Delivery says what a crash does to the component's events: whether
	// a source resumes or loses what was in flight, whether a sink writes
	// replayed events again. Shown by `flowctl components NAME`.
	Delivery string
	Fields   []Field
	// Examples are YAML snippets of the component's config.
	Examples []string
	// Moved maps a config field the component no longer takes to a hint
	// saying where its setting went; a file that still sets it gets that
	// hint instead of a bare "unknown field".
	Moved map[string]string
	// Validate checks what the field types cannot (CEL compiles, mutually
	// exclusive fields). It is pure and fast and returns *FieldError values
	// (combined with errors.Join). Defaults are already applied.
	Validate func(cfg Config) error
	// OutputTypes returns the event types the component emits given the
	// types it receives (nil in = unknown); ok is false when they cannot be
	// known statically. Nil means it passes its input types through.
	OutputTypes func(name string, cfg Config, in []string) (types []string, ok bool)
	// New builds a Source, Processor or Sink (also Opener/Closer if it
	// needs). It has no side effects.
	New func(bc BuildContext) (any, error)
}

// ID is the namespaced id, e.g. "source.file".
func (s *ComponentSpec) ID() string { return string(s.Role) + "." + s.Name }

// Registry holds component specs by role and name. The zero value is not
// usable; use NewRegistry. Tests build their own registry instead of using
// a global one.
type Registry struct {
	mu    sync.RWMutex
	specs map[string]*ComponentSpec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{specs: map[string]*ComponentSpec{}} }

// Register adds a spec. It fails on a duplicate id or an incomplete spec.
func (r *Registry) Register(s *ComponentSpec) error {
	if s.Name == "" || (s.Role != RoleSource && s.Role != RoleProcessor && s.Role != RoleSink) {
		return fmt.Errorf("register component %q: needs a name and a role", s.ID())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.specs[s.ID()]; dup {
		return fmt.Errorf("register component %q: already registered", s.ID())
	}
	r.specs[s.ID()] = s
	return nil
}

// MustRegister is Register that panics, for init-time registration.
func (r *Registry) MustRegister(s *ComponentSpec) {
	if err := r.Register(s); err != nil {
		panic(err)
	}
}

// Lookup finds the built-in of a role by name; the error wraps
// ErrUnknownComponent.
func (r *Registry) Lookup(role Role, name string) (*ComponentSpec, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s, ok := r.specs[string(role)+"."+name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s %q", ErrUnknownComponent, role, name)
}

// Names returns the names registered for a role, sorted.
func (r *Registry) Names(role Role) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for _, s := range r.specs {
		if s.Role == role {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}

// All returns every spec, sorted by id.
func (r *Registry) All() []*ComponentSpec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*ComponentSpec, 0, len(r.specs))
	for _, s := range r.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}
