package bolt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/store"
)

// Schema v1 — the first on-disk format, written by flowctl before pipelines
// had a content hash and a status:
//
//	meta        "schema_version" → "1"
//	pipelines   name → {"v":1,"data":{"name","version","content","base_dir","applied"}}
//	            (no hash, no status; a delete removed the record)
//	components  id → {"v":1,"data":{"id","pipeline","component","kind","role",
//	            "endpoint","protocol","event_types","labels","registered","ttl_seconds"}}
//	runs        one flat bucket; key = pipeline name, 0x00, 8-byte big-endian seq →
//	            {"v":1,"data":{"pipeline","seq","version","status","error","started",
//	            "finished","pid"}}, status one of running|succeeded|failed|killed
//
// migrateV1 rewrites all of it as v2 in the caller's transaction, so a
// failed migration leaves the v1 file as it was.

type pipelineV1 struct {
	Name    string    `json:"name"`
	Version int64     `json:"version"`
	Content string    `json:"content"`
	BaseDir string    `json:"base_dir"`
	Applied time.Time `json:"applied"`
}

type componentV1 struct {
	ID         string            `json:"id"`
	Pipeline   string            `json:"pipeline"`
	Component  string            `json:"component"`
	Kind       string            `json:"kind"`
	Role       string            `json:"role"`
	Endpoint   string            `json:"endpoint"`
	Protocol   string            `json:"protocol"`
	EventTypes []string          `json:"event_types"`
	Labels     map[string]string `json:"labels"`
	Registered time.Time         `json:"registered"`
	TTLSeconds int64             `json:"ttl_seconds"`
}

type runV1 struct {
	Pipeline string    `json:"pipeline"`
	Seq      int64     `json:"seq"`
	Version  int64     `json:"version"`
	Status   string    `json:"status"`
	Error    string    `json:"error"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	PID      int       `json:"pid"`
}

// Bucket names only v1 had.
var (
	bucketComponentsV1 = []byte("components")
)

// runStatesV1 maps v1 run statuses to v2 run states.
var runStatesV1 = map[string]store.RunState{
	"running":   store.RunStarted,
	"succeeded": store.RunCompleted,
	"failed":    store.RunFailed,
	"killed":    store.RunStopped,
}

// decodeV1 unwraps a v1 envelope.
func decodeV1(what string, b []byte, out any) error {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: corrupt value: %w", what, err)
	}
	if env.V != 1 {
		return fmt.Errorf("%s: schema v%d value in a v1 file", what, env.V)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%s: corrupt value: %w", what, err)
	}
	return nil
}

// migrateV1 turns a v1 file into a v2 one inside tx.
func migrateV1(tx *bbolt.Tx, opts Options) error {
	hash := opts.HashSpec
	if hash == nil {
		hash = func(spec []byte) (string, error) {
			sum := sha256.Sum256(spec)
			return hex.EncodeToString(sum[:]), nil
		}
	}

	// Pipelines: same bucket, records rewritten.
	var pipelines []pipelineV2
	if b := tx.Bucket(bucketPipelines); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			var old pipelineV1
			if err := decodeV1(fmt.Sprintf("pipeline %q", k), v, &old); err != nil {
				return err
			}
			h, err := hash([]byte(old.Content))
			if err != nil {
				return fmt.Errorf("hash pipeline %q: %w", old.Name, err)
			}
			pipelines = append(pipelines, pipelineV2{
				Name: old.Name, Revision: old.Version, Hash: h, Spec: []byte(old.Content),
				Dir: old.BaseDir, AppliedAt: old.Applied.UTC(),
				// v1 kept no status: the reconciler observes afresh.
				Status: pipelineStatusV2{Phase: string(store.PhasePending)},
			})
			return nil
		})
		if err != nil {
			return err
		}
	}

	// Components become registrations.
	var regs []registrationV2
	if b := tx.Bucket(bucketComponentsV1); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			var old componentV1
			if err := decodeV1(fmt.Sprintf("component %q", k), v, &old); err != nil {
				return err
			}
			r := registrationV2{
				ID: old.ID, Pipeline: old.Pipeline, Component: old.Component, Name: old.Kind,
				Role: old.Role, Endpoint: old.Endpoint, Protocol: old.Protocol, Metadata: old.Labels,
				RegisteredAt: old.Registered.UTC(), TTLNanos: int64(time.Duration(old.TTLSeconds) * time.Second),
			}
			// v1 had one list of event types; v2 splits it by direction.
			switch flow.Role(old.Role) {
			case flow.RoleSource:
				r.OutputTypes = old.EventTypes
			case flow.RoleSink:
				r.InputTypes = old.EventTypes
			default:
				r.InputTypes, r.OutputTypes = old.EventTypes, old.EventTypes
			}
			regs = append(regs, r)
			return nil
		})
		if err != nil {
			return err
		}
	}

	// Runs: one flat bucket becomes one nested bucket per pipeline.
	var runs []runV2
	if b := tx.Bucket(bucketRuns); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			var old runV1
			if err := decodeV1(fmt.Sprintf("run %q", k), v, &old); err != nil {
				return err
			}
			state, ok := runStatesV1[old.Status]
			if !ok {
				return fmt.Errorf("run %s/%d: unknown v1 status %q", old.Pipeline, old.Seq, old.Status)
			}
			runs = append(runs, runV2{
				ID: old.Seq, Pipeline: old.Pipeline, Revision: old.Version, State: string(state),
				Reason: old.Error, StartedAt: old.Started.UTC(), EndedAt: old.Finished.UTC(), PID: old.PID,
			})
			return nil
		})
		if err != nil {
			return err
		}
	}

	// Rewrite: drop the v1 buckets, lay out v2, put everything back.
	for _, name := range [][]byte{bucketPipelines, bucketComponentsV1, bucketRuns} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("drop v1 bucket %s: %w", name, err)
			}
		}
	}
	if err := create(tx); err != nil {
		return err
	}
	for _, p := range pipelines {
		if err := putPipeline(tx, p); err != nil {
			return err
		}
	}
	for _, r := range regs {
		v, err := encode(r)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketRegistrations).Put([]byte(r.ID), v); err != nil {
			return err
		}
	}
	for _, r := range runs {
		b, err := tx.Bucket(bucketRuns).CreateBucketIfNotExists([]byte(r.Pipeline))
		if err != nil {
			return err
		}
		v, err := encode(r)
		if err != nil {
			return err
		}
		if err := b.Put(runKey(r.ID), v); err != nil {
			return err
		}
		if uint64(r.ID) > b.Sequence() {
			if err := b.SetSequence(uint64(r.ID)); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion)))
}
