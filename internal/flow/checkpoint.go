package flow

import "context"

// Checkpoints: how a pipeline resumes where it was.
//
// A source that can be replayed tells the engine, with every batch, where
// it will be once that batch is acknowledged (EmitAt). The engine commits
// a source's position only when every batch up to it was acknowledged, so
// after a crash the source resumes at the first batch that was not, and
// at most the unacknowledged batches are emitted again.
//
// A sink that can cut its output back (a file) reports how much it has
// written after each batch (CheckpointSink.Position). When the engine
// commits, it records with each source position the sink position that
// holds exactly the events derived from the batches up to it, and on the
// next run the sink keeps that much and drops what was written after it;
// the source emits those events again. Where the sink got batches out of
// order (fan-in of several sources, an unordered parallel processor), no
// such cut may exist: the engine then keeps everything the sink wrote and
// the replayed events are written twice (at-least-once).

// Position is where a replayable source will be once a batch is
// acknowledged. Key names what it reads (a file's path; "" for a source
// with one position) and Value is the source's own encoding of the place.
type Position struct {
	Key   string
	Value []byte
}

// PositionEmitter is implemented by the Emitter the engine gives a source.
type PositionEmitter interface {
	// EmitAt is Emit for a source that can be replayed: pos is where the
	// source will be once this batch is acknowledged. It is committed
	// durably only after every earlier batch of the source was
	// acknowledged too.
	EmitAt(ctx context.Context, batch []*Event, pos Position) error
}

// Resumer is a source that can continue from committed positions.
type Resumer interface {
	// Resume is called once, before Open, with the positions an earlier
	// run committed (Position.Key → Position.Value). It is not called when
	// there are none. A position the source cannot use (the file it names
	// was replaced) is the source's to judge: it logs why and starts that
	// part over.
	Resume(positions map[string][]byte) error
}

// CheckpointSink is a sink whose output can be cut back to a committed
// position, so that events written after the last checkpoint are not
// written twice when they are replayed.
type CheckpointSink interface {
	// OutputKey names the output (a file's absolute path): a position is
	// resumed only into the output it was taken from.
	OutputKey() string
	// Position returns how much output the sink has produced so far,
	// counting everything Write returned for (bytes, for a file). It does
	// no I/O; the engine calls it after every Write.
	Position() int64
	// Sync makes everything written so far durable (flush and fsync). It
	// may run while Write runs in another goroutine.
	Sync(ctx context.Context) error
	// Resume is called once, before Open, with the position committed by
	// an earlier run into the same output. Open then keeps that much of
	// the output; what was written after it came from events that will be
	// sent again, and the sink must not keep them twice (it drops them,
	// or checks them against what comes). With keepTail set, some of the
	// events after pos come from a source that cannot replay them: the
	// sink keeps everything and appends (at-least-once). Output shorter
	// than pos means it was changed by someone else: Open fails and says
	// so.
	Resume(pos int64, keepTail bool) error
}

// ReplayCounter is a CheckpointSink that can say how many events of a
// resumed run it had already written before the crash (and so did not
// write twice, or wrote again in place of what it cut).
type ReplayCounter interface {
	// Replayed returns the count so far. It is safe from any goroutine.
	Replayed() int64
}

// Checkpoint is what a pipeline's state store holds: the committed
// positions of its sources and the matching outputs of its sinks, by
// component name.
type Checkpoint struct {
	Sources map[string]map[string][]byte
	Sinks   map[string]SinkCheckpoint
}

// SinkCheckpoint is a sink's committed output: its key and how much of
// it holds events whose source positions were committed.
type SinkCheckpoint struct {
	Key      string
	Position int64
}

// CheckpointStore keeps one pipeline's checkpoint durably.
type CheckpointStore interface {
	// Load returns the last committed checkpoint (empty maps when there
	// is none).
	Load() (Checkpoint, error)
	// Commit merges c into the stored checkpoint in one durable
	// transaction: every position of c replaces the stored one with the
	// same component and key; nothing else changes. It returns once the
	// transaction is on disk.
	Commit(c Checkpoint) error
}
