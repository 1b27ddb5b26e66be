// Package engine runs a validated pipeline: one runtime for every topology
// (a linear pipeline is just a small DAG).
//
// Each processor and sink has one bounded input queue, measured in events
// and holding batches; upstream nodes block when it is full, which is the
// pipeline's backpressure. A batch is what was ready (at most
// flow.MaxBatch events) and is shared by reference when it fans out; type
// routing on an input edge only lets the selected event types cross it.
//
// Acknowledgement: every batch a source emits gets an ack. Each batch
// derived from it (a processor's output, a fan-out copy restricted by
// type, the failed events sent to the dead-letter sink) holds the ack
// once; when the last of them is released (written by a sink, filtered,
// dropped, dead-lettered) the source's done callback fires.
//
// Shutdown: when Run's context is cancelled the sources stop; everything
// already emitted drains to the sinks within Options.Grace, then the run is
// stopped hard. Abort stops at once.
//
// Reload: a running pipeline takes a changed file in place. Unchanged
// components keep running untouched; added ones start, removed ones drain
// and stop, changed ones drain before their new instance starts, and
// edges are switched while their upstream is held between batches (see
// Engine.Reload). Only a change of the dead-letter sink needs a restart.
//
// engine imports flow, spec and graph; it must not import the built-in
// components (they come through the flow.Registry it is handed) nor the
// CLI.
package engine
