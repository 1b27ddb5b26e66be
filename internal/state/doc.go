// Package state keeps a pipeline's checkpoints — the committed positions
// of its sources and the matching outputs of its sinks — in one bbolt
// file per pipeline, so that a run killed at any moment resumes where it
// was. It implements flow.CheckpointStore and imports only flow.
package state
