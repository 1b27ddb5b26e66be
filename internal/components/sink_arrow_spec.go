package components

import (
	"github.com/flowctl/flowctl/internal/flow"
)

// The arrow sink is the parquet sink's machinery (tableSink: directory,
// rolling, journal, recovery, schema and conversion) with Arrow IPC files
// instead of Parquet files. It is its own component type rather than a
// format field of the parquet sink because its compression codecs and
// their default differ (Arrow IPC knows only lz4 and zstd), its grouping
// is a record batch rather than a row group, and sinks' `format` field
// already means data or envelope elsewhere.
//
// arrow-go adds about 9 MB to the binary and 1.2–1.6 ms of package
// initialisers to every command, so the writer is built only with the
// arrow build tag (sink_arrow.go), like DuckDB: `go build -tags arrow
// ./cmd/flowctl`. The spec lives here, untagged, so that `flowctl
// components arrow` and the JSON Schema describe it in every build;
// sink_arrow_absent.go registers it with an error saying how to get it.

// errNoArrow is what a binary built without the arrow tag says when a
// pipeline uses the arrow sink.
var errNoArrow error = &flow.NotBuiltError{Reason: "this flowctl was built without Arrow IPC output (arrow-go adds about 9 MB): build it with `go build -tags arrow ./cmd/flowctl`"}

func arrowSpec(validate func(flow.Config) error, build func(flow.BuildContext) (any, error)) *flow.ComponentSpec {
	return &flow.ComponentSpec{
		Role:     flow.RoleSink,
		Name:     "arrow",
		Summary:  "Writes events as rows of Arrow IPC files (or streams) in a directory, one column per data field (declared or inferred from the first batch) plus event attributes; one record batch per batch_rows rows; files are rolled by rows, size or age.",
		Delivery: "Exactly once across a crash (even SIGKILL) when its events come, in order, from sources that can be replayed (file, generate). Rows of the file being written are also appended to a journal next to it that every checkpoint fsyncs; a resumed run rebuilds the unfinished file from the journal up to the checkpoint and drops the rest, which the source sends again. Finished files are never removed: replayed events that a finished file already holds are skipped. Fed by several sources, by an unordered parallel processor or by a source that cannot be replayed: at-least-once.",
		Fields: []flow.Field{
			{Name: "path", Type: flow.TypeString, Required: true, Example: "out/events",
				Description: "The directory to write the files to; relative paths are resolved against the pipeline file's directory. It is created if missing."},
			{Name: "file_prefix", Type: flow.TypeString, Default: "part",
				Description: "Files are named PREFIX-NNNNNN.arrow (PREFIX-NNNNNN.arrows with arrow_format: stream), numbered on from the highest number already in the directory. The file being written is .PREFIX-NNNNNN.arrow.tmp with its journal .PREFIX-NNNNNN.arrow.journal; .PREFIX.arrow.rows indexes the finished files' row counts, so a resumed run need not read them."},
			{Name: "arrow_format", Type: flow.TypeString, Default: "file", Enum: []string{"file", "stream"},
				Description: "file writes the Arrow IPC file format (.arrow: a footer indexes the record batches, for random access); stream writes the IPC stream format (.arrows: no footer, read front to back)."},
			tableSchemaFields[0], tableSchemaFields[1], tableSchemaFields[2],
			{Name: "batch_rows", Type: flow.TypeInt, Default: 10000, Description: "Rows per record batch."},
			tableRollFields[0], tableRollFields[1], tableRollFields[2],
			{Name: "compression", Type: flow.TypeString, Default: "none", Enum: []string{"none", "lz4", "zstd"},
				Description: "Compression of the record batches' buffers (lz4 is LZ4 frame); readers need Arrow 1.0 or later for lz4 and zstd."},
		},
		Examples: []string{
			"path: out/events",
			"path: out/payments\nschema:\n  - {name: user, type: string, optional: false}\n  - {name: amount, type: double}\n  - {name: at, type: timestamp}\nmax_rows: 100000\nmax_age: 5m\ncompression: zstd",
		},
		Validate: validate,
		New:      build,
	}
}
