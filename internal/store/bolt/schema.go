package bolt

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/store"
)

// SchemaVersion is the newest schema this binary reads and the one it
// writes.
const SchemaVersion = 2

// Bucket and key names of schema v2.
var (
	bucketMeta          = []byte("meta")
	bucketPipelines     = []byte("pipelines")
	bucketRegistrations = []byte("registrations")
	bucketRuns          = []byte("runs")
	keySchemaVersion    = []byte("schema_version")
)

// envelope wraps every stored value with the schema version it was
// written in.
type envelope struct {
	V    int             `json:"v"`
	Data json.RawMessage `json:"data"`
}

// newerSchemaError says what to do about data this binary cannot read.
func newerSchemaError(what string, v int) error {
	return fmt.Errorf("%s: %w (schema v%d, this binary reads up to v%d): upgrade flowctl", what, store.ErrNewerSchema, v, SchemaVersion)
}

// encode wraps data in a v2 envelope.
func encode(data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{V: SchemaVersion, Data: raw})
}

// decode unwraps a v2 envelope into out; what names the value in errors.
func decode(what string, b []byte, out any) error {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: corrupt value: %w", what, err)
	}
	switch {
	case env.V > SchemaVersion:
		return newerSchemaError(what, env.V)
	case env.V < SchemaVersion:
		return fmt.Errorf("%s: value of schema v%d was not migrated (this binary reads v%d)", what, env.V, SchemaVersion)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%s: corrupt value: %w", what, err)
	}
	return nil
}

// The v2 records. They are spelled out here, apart from the store types,
// so that a change to the domain types cannot change the file format by
// accident: a format change is a new schema version with a migration.

type pipelineV2 struct {
	Name      string    `json:"name"`
	Revision  int64     `json:"revision"`
	Hash      string    `json:"hash"`
	Spec      []byte    `json:"spec"`
	Dir       string    `json:"dir"`
	AppliedAt time.Time `json:"applied_at"`
	// CreatedAt came after schema v2 was first written and did not bump
	// the schema version: it is an optional field, so older v2 values
	// without it still decode (toStore reads them as created at
	// AppliedAt), and an older binary reading a newer value ignores it.
	CreatedAt time.Time        `json:"created_at,omitzero"`
	Status    pipelineStatusV2 `json:"status"`
	// Deleted marks a tombstone: the pipeline was deleted at Revision,
	// which a later apply continues from.
	Deleted bool `json:"deleted,omitempty"`
}

type pipelineStatusV2 struct {
	ObservedRevision int64         `json:"observed_revision"`
	Phase            string        `json:"phase"`
	Ready            bool          `json:"ready"`
	Conditions       []conditionV2 `json:"conditions,omitempty"`
	LastError        string        `json:"last_error,omitempty"`
}

type conditionV2 struct {
	Type           string    `json:"type"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	Message        string    `json:"message,omitempty"`
	LastTransition time.Time `json:"last_transition"`
}

type registrationV2 struct {
	ID           string            `json:"id"`
	Pipeline     string            `json:"pipeline,omitempty"`
	Component    string            `json:"component,omitempty"`
	Name         string            `json:"name,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Role         string            `json:"role,omitempty"`
	Endpoint     string            `json:"endpoint,omitempty"`
	Protocol     string            `json:"protocol,omitempty"`
	InputTypes   []string          `json:"input_types,omitempty"`
	OutputTypes  []string          `json:"output_types,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	RegisteredAt time.Time         `json:"registered_at"`
	TTLNanos     int64             `json:"ttl_ns"`
}

type runV2 struct {
	ID        int64     `json:"id"`
	Pipeline  string    `json:"pipeline"`
	Revision  int64     `json:"revision"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	PID       int       `json:"pid,omitempty"`
	// ExitCode came after v2 was written: optional, 0 when absent.
	ExitCode int              `json:"exit_code,omitempty"`
	Counters map[string]int64 `json:"counters,omitempty"`
}

func pipelineToV2(p store.Pipeline, deleted bool) pipelineV2 {
	p = p.Clone()
	return pipelineV2{
		Name: p.Name, Revision: p.Revision, Hash: p.Hash, Spec: p.Spec, Dir: p.Dir,
		AppliedAt: p.AppliedAt, CreatedAt: p.CreatedAt, Status: statusToV2(p.Status), Deleted: deleted,
	}
}

func statusToV2(s store.PipelineStatus) pipelineStatusV2 {
	out := pipelineStatusV2{
		ObservedRevision: s.ObservedRevision, Phase: string(s.Phase), Ready: s.Ready, LastError: s.LastError,
	}
	for _, c := range s.Conditions {
		out.Conditions = append(out.Conditions, conditionV2(c))
	}
	return out
}

func (p pipelineV2) toStore() store.Pipeline {
	out := store.Pipeline{
		Name: p.Name, Revision: p.Revision, Hash: p.Hash, Spec: p.Spec, Dir: p.Dir, AppliedAt: p.AppliedAt,
		CreatedAt: p.CreatedAt,
		Status: store.PipelineStatus{
			ObservedRevision: p.Status.ObservedRevision, Phase: store.Phase(p.Status.Phase),
			Ready: p.Status.Ready, LastError: p.Status.LastError,
		},
	}
	if out.CreatedAt.IsZero() {
		// Written before CreatedAt was kept: the oldest time known.
		out.CreatedAt = p.AppliedAt
	}
	for _, c := range p.Status.Conditions {
		out.Status.Conditions = append(out.Status.Conditions, store.Condition(c))
	}
	return out.Clone()
}

func registrationToV2(r store.Registration) registrationV2 {
	r = r.Clone()
	return registrationV2{
		ID: r.ID, Pipeline: r.Pipeline, Component: r.Component, Name: r.Name, Version: r.Version,
		Description: r.Description, Role: string(r.Role), Endpoint: r.Endpoint, Protocol: r.Protocol,
		InputTypes: r.InputTypes, OutputTypes: r.OutputTypes, Metadata: r.Metadata,
		RegisteredAt: r.RegisteredAt, TTLNanos: int64(r.TTL),
	}
}

func (r registrationV2) toStore() store.Registration {
	return store.Registration{
		ID: r.ID, Pipeline: r.Pipeline, Component: r.Component, Name: r.Name, Version: r.Version,
		Description: r.Description, Role: flow.Role(r.Role), Endpoint: r.Endpoint, Protocol: r.Protocol,
		InputTypes: r.InputTypes, OutputTypes: r.OutputTypes, Metadata: r.Metadata,
		RegisteredAt: r.RegisteredAt, TTL: time.Duration(r.TTLNanos),
	}.Clone()
}

func runToV2(r store.Run) runV2 {
	r = r.Clone()
	return runV2{
		ID: r.ID, Pipeline: r.Pipeline, Revision: r.Revision, State: string(r.State), Reason: r.Reason,
		StartedAt: r.StartedAt, EndedAt: r.EndedAt, PID: r.PID, ExitCode: r.ExitCode, Counters: r.Counters,
	}
}

func (r runV2) toStore() store.Run {
	return store.Run{
		ID: r.ID, Pipeline: r.Pipeline, Revision: r.Revision, State: store.RunState(r.State), Reason: r.Reason,
		StartedAt: r.StartedAt, EndedAt: r.EndedAt, PID: r.PID, ExitCode: r.ExitCode, Counters: r.Counters,
	}.Clone()
}
