package spec

import (
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// Pos is a position in a pipeline file (1-based line and column).
type Pos struct {
	Line int
	Col  int
}

// Pipeline is a validated pipeline file. The flat form, the flowctl/v1
// envelope and the earlier flowctl's legacy shape give the same Pipeline.
type Pipeline struct {
	// File is the path the pipeline was read from ("" for stdin).
	File string
	// Envelope is true when the file used apiVersion/kind/metadata/spec.
	Envelope bool
	// Legacy is true when the file used the earlier flowctl's legacy
	// shape (version, source, processors with plugin, sink).
	Legacy     bool
	APIVersion string
	Kind       string

	Name        string
	Namespace   string
	Description string
	Labels      map[string]string
	Annotations map[string]string
	// Driver is the earlier format's spec.driver (process, docker, ...).
	Driver string
	// Config is the pipeline-level config map of the earlier format.
	Config map[string]any

	Sources    []*Component
	Processors []*Component
	Sinks      []*Component
	// DeadLetter is the sink that receives every failed event; nil if none.
	DeadLetter *Component
	// Pipelines are the earlier format's sub-pipelines (depends_on).
	Pipelines []*PipelineRef
}

// PipelineRef is an entry of the earlier format's spec.pipelines.
type PipelineRef struct {
	Name      string
	DependsOn []string
	Pos       Pos
	// Component is the entry read as a component, when it gives component
	// fields (image, command, env, ports, inputs, ...) besides name, id and
	// depends_on; nil otherwise. Its Role is "pipeline": it is a service
	// that moves its data itself, outside the event graph (Components does
	// not list it), and its Inputs only name what it follows.
	Component *Component
}

// Components returns sources, processors and sinks in file order (the dead
// letter sink is not included).
func (p *Pipeline) Components() []*Component {
	out := make([]*Component, 0, len(p.Sources)+len(p.Processors)+len(p.Sinks))
	out = append(out, p.Sources...)
	out = append(out, p.Processors...)
	return append(out, p.Sinks...)
}

// Component finds a component by name (the dead letter sink included).
func (p *Pipeline) Component(name string) *Component {
	for _, c := range p.Components() {
		if c.Name == name {
			return c
		}
	}
	if p.DeadLetter != nil && p.DeadLetter.Name == name {
		return p.DeadLetter
	}
	return nil
}

// Runner says what runs a component.
type Runner string

// What runs a component: a built-in in-process, a local process or a
// container.
const (
	RunBuiltin   Runner = "builtin"
	RunProcess   Runner = "process"
	RunContainer Runner = "container"
	// RunRemote is a component already running elsewhere, reached at its
	// `url` (protocol http); flowctl starts nothing for it.
	RunRemote Runner = "remote"
)

// Component is one source, processor or sink. `name` and `id` are the same
// field.
type Component struct {
	Name string
	Role flow.Role
	// Runner is derived: builtin when Type names a built-in, else container
	// when Image is set, else process when Command is set, else remote
	// when only URL is set.
	Runner Runner
	// Type names the built-in; in files of the earlier format next to
	// image/command it is a free label and kept as written.
	Type string
	// Ref is Type when it is a component reference (NAME@VERSION,
	// ORG/NAME@VERSION, HOST/ORG/NAME:VERSION) without image or command:
	// Runner is then process, and Command is empty until the reference is
	// resolved to its binary when the pipeline starts (componentref).
	Ref     string
	Image   string
	Command []string
	Args    []string

	Inputs []Input
	// InputEventTypes is the earlier format's per-component type
	// selection; it is also copied into every Input that selects none.
	InputEventTypes []string
	// OutputEventTypes is what the component declares it emits (earlier
	// format field); empty means unknown.
	OutputEventTypes []string

	// Config is the built-in's own settings, defaults applied; for an
	// external component it is passed on as is.
	Config flow.Config
	// ConfigEnv names, by config key, the environment variable a component
	// given by reference reads that key from, as its metadata.json says
	// (env_mapping, config_schema); filled when the reference is resolved.
	// The key is passed under that name besides its upper-cased one.
	ConfigEnv map[string]string

	Env        map[string]string
	WorkingDir string

	// Build is the command `flowctl run --watch` runs (in the pipeline's
	// directory) before it starts the component and again whenever a file
	// matching Watch changes; a list, or one string split like a shell.
	// Only for a component run by `command`; plain `flowctl run` and the
	// translators ignore it.
	Build []string
	// Watch are the globs (relative to the pipeline's directory; `**`
	// matches any number of directories) of the sources Build builds.
	// Required with Build.
	Watch []string

	Buffer      int  // [1024]
	Parallelism int  // [1]
	Ordered     bool // [true]
	OnError     OnError

	Protocol       string // auto | grpc | flowctl-v1 | stdio | http | none [auto]
	URL            string
	StartupTimeout time.Duration // [10s]
	StopGrace      time.Duration // [10s]
	RestartPolicy  string        // no | on-failure | always | unless-stopped [on-failure]

	Ports       []Port
	Volumes     []Volume
	Secrets     []Secret
	Resources   Resources
	Replicas    int
	HealthCheck string
	HealthPort  int
	DependsOn   []string

	// Pos is where the component's entry starts in the file.
	Pos Pos
	// Positions maps a field path (e.g. "config.expr", "inputs[1]") to
	// where it is written, for diagnostics found after parsing.
	Positions map[string]Pos
}

// Input is one entry of inputs: an upstream component and, optionally, the
// event types taken from it (none = all).
type Input struct {
	From  string
	Types []string
	Pos   Pos
}

// OnError policies.
const (
	OnErrorRetry      = "retry"
	OnErrorDeadLetter = "dead_letter"
	OnErrorDrop       = "drop"
	OnErrorStop       = "stop"
)

// OnError is what happens to an event a component fails on.
// `on_error: drop` and `on_error: {policy: retry, max_attempts: 5,
// backoff: 200ms, max_backoff: 10s, then: dead_letter}` are both accepted.
type OnError struct {
	Policy      string
	MaxAttempts int           // 0 = no limit; [0] for sinks, [3] for processors
	Backoff     time.Duration // [100ms], doubling
	MaxBackoff  time.Duration // [10s]
	// Then is what follows exhausted retries: dead_letter, drop or stop.
	Then string
}

// Port is a container port.
type Port struct {
	Name          string
	ContainerPort int
	HostPort      int
	Protocol      string
}

// Volume is a mount of a container.
type Volume struct {
	Name          string
	MountPath     string
	HostPath      string
	ContainerPath string
	ReadOnly      bool
}

// Secret is a secret given to a component.
type Secret struct {
	Name          string
	HostPath      string
	ContainerPath string
	Env           string
	Mode          string
	Type          string
	Required      bool
	Labels        map[string]string
}

// Resources are container resource requests and limits.
type Resources struct {
	Requests ResourceList
	Limits   ResourceList
}

// ResourceList is a cpu and memory quantity pair, as written.
type ResourceList struct {
	CPU    string
	Memory string
}
