package store

import (
	"context"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// Store holds the control plane's durable state. Every method may be called
// from many goroutines at once; each call is atomic. Records passed in are
// copied and records returned are copies: changing one afterwards changes
// nothing stored. Timestamps come back in UTC without a monotonic reading.
//
// Lifecycle:
//
//  1. open: a backend's constructor (bolt.Open, memory.New) returns a ready
//     Store; bolt migrates older data at this point and refuses newer data.
//  2. use: any method, concurrently.
//  3. close: Close releases the backend; every later call, Close included,
//     returns ErrClosed.
//
// The ctx of each call bounds how long the call waits to start (backends
// check it before doing any work); a started write is never torn.
type Store interface {
	// PutPipeline applies p as the desired state of pipeline p.Name.
	//
	// expected is an optimistic-concurrency check against the stored
	// revision: AnyRevision skips it, NoRevision demands that the pipeline
	// does not exist (a deleted one does not), and n > 0 demands that the
	// stored revision is n. A failed check returns ErrConflict and stores
	// nothing.
	//
	// When the pipeline exists and p.Hash equals the stored Hash, nothing is
	// written and the stored record comes back with Changed false: applying
	// the same file again is a no-op (Spec, Dir and AppliedAt stay as
	// first applied). Otherwise Spec, Hash, Dir and AppliedAt are replaced
	// and Revision becomes the stored revision + 1 (1 for a new pipeline;
	// a pipeline re-applied after a delete continues after the revision it
	// was deleted at). p.Revision, p.CreatedAt and p.Status are ignored: a
	// new pipeline (a re-applied deleted one too) gets CreatedAt =
	// AppliedAt and Status.Phase PhasePending, an existing one keeps its
	// CreatedAt and its status (ObservedRevision now lags Revision until
	// the reconciler writes status). A zero p.AppliedAt means now. p.Name
	// and p.Hash must not be empty.
	PutPipeline(ctx context.Context, p Pipeline, expected int64) (PutResult, error)
	// NextRevision returns the revision the next PutPipeline of name that
	// writes would give it: the stored revision + 1, the revision a deleted
	// pipeline of that name reached + 1, or 1 for a name never applied.
	// It only reads: a PutPipeline that runs meanwhile may take that
	// revision first.
	NextRevision(ctx context.Context, name string) (int64, error)
	// GetPipeline returns the pipeline called name, or ErrNotFound.
	GetPipeline(ctx context.Context, name string) (Pipeline, error)
	// ListPipelines returns every pipeline, sorted by name.
	ListPipelines(ctx context.Context) ([]Pipeline, error)
	// DeletePipeline removes the pipeline called name (ErrNotFound if there
	// is none). Its runs stay in the history and its revision counter is
	// remembered, so a later PutPipeline of the same name continues the
	// revision numbers and the run ids.
	DeletePipeline(ctx context.Context, name string) error
	// UpdatePipelineStatus replaces the status of the pipeline called name
	// (ErrNotFound if there is none). It never changes Revision, Hash, Spec,
	// Dir, AppliedAt or CreatedAt.
	UpdatePipelineStatus(ctx context.Context, name string, status PipelineStatus) error

	// PutRegistration creates or replaces the registration with reg.ID
	// (which must not be empty). A zero RegisteredAt means now.
	PutRegistration(ctx context.Context, reg Registration) error
	// DeleteRegistration removes the registration with id, or returns
	// ErrNotFound.
	DeleteRegistration(ctx context.Context, id string) error
	// ListRegistrations returns the registrations of pipeline, or of every
	// pipeline when pipeline is "", sorted by ID.
	ListRegistrations(ctx context.Context, pipeline string) ([]Registration, error)

	// StartRun records a new run of run.Pipeline and returns it with ID set
	// to the next number of that pipeline's sequence (1, 2, 3…; never
	// reused, even after DeletePipeline or pruning). run.ID is ignored; a
	// zero State means RunStarted and a zero StartedAt means now. The
	// pipeline need not exist.
	//
	// keep > 0 prunes the pipeline's history in the same call: of its runs
	// older than the newest keep (the new one included), every one that
	// has ended is removed; one still RunStarted is never removed, so more
	// than keep may remain. keep <= 0 removes nothing.
	StartRun(ctx context.Context, run Run, keep int) (Run, error)
	// UpdateRun replaces the run identified by run.Pipeline and run.ID
	// (ErrNotFound if there is none) with run.
	UpdateRun(ctx context.Context, run Run) error
	// ListRuns returns the runs of pipeline (of every pipeline when
	// pipeline is ""), newest first: by ID for one pipeline, by StartedAt
	// then pipeline name then ID across pipelines. limit > 0 returns at
	// most limit runs; limit <= 0 returns all.
	ListRuns(ctx context.Context, pipeline string, limit int) ([]Run, error)

	// Close releases the store. It is safe to call more than once; calls
	// after the first return ErrClosed.
	Close() error
}

// Expected-revision values for PutPipeline.
const (
	// AnyRevision skips the revision check: last writer wins.
	AnyRevision int64 = -1
	// NoRevision demands that the pipeline does not exist yet.
	NoRevision int64 = 0
)

// PutResult is what PutPipeline did.
type PutResult struct {
	// Pipeline is the stored record after the call.
	Pipeline Pipeline
	// Created is true when the pipeline did not exist before.
	Created bool
	// Changed is true when anything was written (Created implies Changed).
	Changed bool
}

// Pipeline is an applied pipeline: the desired state (Spec and what
// describes it) and the observed state (Status), kept apart.
type Pipeline struct {
	// Name is the pipeline's name (metadata.name in its file); unique.
	Name string `json:"name"`
	// Revision counts the applied contents: 1, 2, 3…, bumped only when
	// Hash changes.
	Revision int64 `json:"revision"`
	// Hash is the content hash of the normalised spec (the server
	// computes it; the store compares and keeps it).
	Hash string `json:"hash"`
	// Spec is the pipeline file as applied, after ${VAR} substitution.
	Spec []byte `json:"spec"`
	// Dir is the directory relative paths in Spec resolve against.
	Dir string `json:"dir"`
	// AppliedAt is when this revision was applied.
	AppliedAt time.Time `json:"applied_at"`
	// CreatedAt is when the pipeline was created: the AppliedAt of the
	// PutPipeline that created it (revision 1, or the first revision after
	// a delete), kept by every later revision.
	CreatedAt time.Time `json:"created_at"`
	// Status is what the reconciler last observed.
	Status PipelineStatus `json:"status"`
}

// PipelineStatus is the observed state of a pipeline, written by the
// reconciler through UpdatePipelineStatus.
type PipelineStatus struct {
	// ObservedRevision is the revision the reconciler last acted on.
	ObservedRevision int64 `json:"observed_revision"`
	// Phase is where the pipeline is in its life.
	Phase Phase `json:"phase"`
	// Ready is true while every component of ObservedRevision runs
	// healthy.
	Ready bool `json:"ready"`
	// Conditions are the detailed observations, one per Type.
	Conditions []Condition `json:"conditions,omitempty"`
	// LastError is the last failure's message ("" when none).
	LastError string `json:"last_error,omitempty"`
}

// Phase is the coarse state of a pipeline.
//
//	Pending ──► Running ──► Completed   (all sources bounded and drained)
//	   │           │  └───► Failed      (gave up; LastError says why)
//	   │           └──────► Stopped     (deleted or server shut down)
//	   └──► Failed
//
// A new revision sends any phase back to Pending.
type Phase string

// The phases of a pipeline.
const (
	PhasePending   Phase = "Pending"
	PhaseRunning   Phase = "Running"
	PhaseCompleted Phase = "Completed"
	PhaseFailed    Phase = "Failed"
	PhaseStopped   Phase = "Stopped"
)

// Condition is one observation about a pipeline, in the manner of
// Kubernetes conditions: Type names it (e.g. "Applied", "Ready"), Status is
// "True", "False" or "Unknown".
type Condition struct {
	Type           string    `json:"type"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	Message        string    `json:"message,omitempty"`
	LastTransition time.Time `json:"last_transition"`
}

// Registration is the durable part of a component's registration with the
// control plane. Heartbeats and health are kept in memory by the server,
// never here.
type Registration struct {
	// ID is the component's registration id (FLOWCTL_COMPONENT_ID); unique.
	ID string `json:"id"`
	// Pipeline is the pipeline the component belongs to ("" when none).
	Pipeline string `json:"pipeline,omitempty"`
	// Component is the component's id within the pipeline.
	Component string `json:"component,omitempty"`
	// Name, Version and Description describe the component's kind.
	Name        string `json:"name,omitempty"`
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
	// Role is source, processor or sink.
	Role flow.Role `json:"role,omitempty"`
	// Endpoint is the host:port where it serves its stream service.
	Endpoint string `json:"endpoint,omitempty"`
	// Protocol is the protocol it registered through.
	Protocol string `json:"protocol,omitempty"`
	// InputTypes and OutputTypes are the event types it accepts and
	// produces.
	InputTypes  []string `json:"input_types,omitempty"`
	OutputTypes []string `json:"output_types,omitempty"`
	// Metadata holds free-form labels.
	Metadata map[string]string `json:"metadata,omitempty"`
	// RegisteredAt is when it (last) registered.
	RegisteredAt time.Time `json:"registered_at"`
	// TTL is how long a heartbeat keeps it healthy.
	TTL time.Duration `json:"ttl"`
}

// Run is one execution of one revision of a pipeline: one supervised
// `flowctl run` child from start to end.
//
//	Started ──► Completed    (bounded sources finished)
//	   ├──────► Stopped      (deleted, replaced or server shut down)
//	   ├──────► Failed       (exited with an error; Reason says why)
//	   └──────► Interrupted  (the server died; found Started at next start)
type Run struct {
	// ID numbers the runs of one pipeline: 1, 2, 3…
	ID int64 `json:"id"`
	// Pipeline and Revision say what ran.
	Pipeline string `json:"pipeline"`
	Revision int64  `json:"revision"`
	// State is where the run is.
	State RunState `json:"state"`
	// Reason says why it ended (or anything worth saying while it runs).
	Reason string `json:"reason,omitempty"`
	// StartedAt and EndedAt bound it; EndedAt is zero while it runs.
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// PID is the child process's id.
	PID int `json:"pid,omitempty"`
	// ExitCode is the child's exit status once it ended (-1 when a signal
	// ended it).
	ExitCode int `json:"exit_code,omitempty"`
	// Counters are the run's totals (events in/out, errors…) by name.
	Counters map[string]int64 `json:"counters,omitempty"`
}

// RunState is the state of a run.
type RunState string

// The states of a run.
const (
	RunStarted     RunState = "Started"
	RunCompleted   RunState = "Completed"
	RunStopped     RunState = "Stopped"
	RunFailed      RunState = "Failed"
	RunInterrupted RunState = "Interrupted"
)

// Terminal reports whether a run in state s has ended.
func (s RunState) Terminal() bool { return s != RunStarted && s != "" }
