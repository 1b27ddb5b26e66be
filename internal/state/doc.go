// Package state keeps a pipeline's checkpoints — the committed positions
// of its sources and the matching outputs of its sinks — in one bbolt
// file per pipeline, so that a run killed at any moment resumes where it
// was. It implements flow.CheckpointStore; it imports flow and
// store/boltfile (which refuses a damaged or foreign file).
package state
