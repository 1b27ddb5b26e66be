//go:build arrow

package components

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/parquet-go/parquet-go"

	"github.com/flowctl/flowctl/internal/flow"
)

// The Arrow IPC writer of the arrow sink (see sink_arrow_spec.go).
func init() {
	optionalParts = append(optionalParts, "arrow")
	builtins = append(builtins, arrowSpec(
		func(cfg flow.Config) error {
			_, err := parseTableSink(cfg, "arrow")
			return err
		},
		func(bc flow.BuildContext) (any, error) { return newTableSink(bc, "arrow") },
	))
}

// arrowFlowctlSchemaKey is pqSchemaKey, kept in the Arrow schema's
// metadata.
const arrowFlowctlSchemaKey = pqSchemaKey

// arrowSchema maps the columns to Arrow fields: string → utf8, int64 →
// int64, double → float64, bool → bool, timestamp → timestamp[ns, UTC],
// json → utf8 marked as the canonical arrow.json extension type. A
// column is nullable when it is optional.
func arrowSchema(cols []pqColumn) *arrow.Schema {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		f := arrow.Field{Name: c.Name, Nullable: c.Optional}
		switch c.Type {
		case "int64":
			f.Type = arrow.PrimitiveTypes.Int64
		case "double":
			f.Type = arrow.PrimitiveTypes.Float64
		case "bool":
			f.Type = arrow.FixedWidthTypes.Boolean
		case "timestamp":
			f.Type = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
		case "json":
			// The canonical JSON extension is utf8 storage with these two
			// field metadata entries; readers that know it see JSON,
			// others a string.
			f.Type = arrow.BinaryTypes.String
			f.Metadata = arrow.NewMetadata(
				[]string{ipc.ExtensionTypeKeyName, ipc.ExtensionMetadataKeyName},
				[]string{"arrow.json", ""})
		default:
			f.Type = arrow.BinaryTypes.String
		}
		fields[i] = f
	}
	md := arrow.NewMetadata([]string{arrowFlowctlSchemaKey}, []string{pqEncodeSchema(cols)})
	return arrow.NewSchema(fields, &md)
}

// arrowWriter is the Arrow IPC tableWriter: rows are appended to the
// column builders and become one record batch per group.
type arrowWriter struct {
	b *array.RecordBuilder
	w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	rows int // in the builders
}

// newArrowWriter starts an Arrow IPC file (or stream) with the sink's
// schema on w.
func (s *tableSink) newArrowWriter(w io.Writer) (*arrowWriter, error) {
	sch := arrowSchema(s.cols)
	mem := memory.NewGoAllocator()
	opts := []ipc.Option{ipc.WithSchema(sch), ipc.WithAllocator(mem)}
	switch s.codec {
	case "zstd":
		opts = append(opts, ipc.WithZstd())
	case "lz4":
		opts = append(opts, ipc.WithLZ4())
	}
	aw := &arrowWriter{}
	if s.ext == "arrows" {
		aw.w = ipc.NewWriter(w, opts...)
	} else {
		fw, err := ipc.NewFileWriter(w, opts...)
		if err != nil {
			return nil, err
		}
		aw.w = fw
	}
	aw.b = array.NewRecordBuilder(mem, sch)
	aw.b.Reserve(min(s.rgRows, 1024))
	return aw, nil
}

// WriteRow appends a row; its values have the Parquet kinds the
// conversion gives each column type (see pqDataValue).
func (a *arrowWriter) WriteRow(row parquet.Row) error {
	for i, v := range row {
		fb := a.b.Field(i)
		if v.IsNull() {
			fb.AppendNull()
			continue
		}
		switch b := fb.(type) {
		case *array.StringBuilder:
			b.BinaryBuilder.Append(v.ByteArray())
		case *array.Int64Builder:
			b.Append(v.Int64())
		case *array.Float64Builder:
			b.Append(v.Double())
		case *array.BooleanBuilder:
			b.Append(v.Boolean())
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(v.Int64()))
		default:
			return fmt.Errorf("column %d: no Arrow builder for %s", i, fb.Type())
		}
	}
	a.rows++
	return nil
}

// EndGroup writes the rows in the builders as one record batch.
func (a *arrowWriter) EndGroup() error {
	if a.rows == 0 {
		return nil
	}
	rec := a.b.NewRecordBatch()
	defer rec.Release()
	a.rows = 0
	return a.w.Write(rec)
}

// Close writes the last record batch and the footer (file) or the
// end-of-stream marker (stream).
func (a *arrowWriter) Close() error {
	err := a.EndGroup()
	if cerr := a.w.Close(); err == nil {
		err = cerr
	}
	a.b.Release()
	return err
}

// arrowRows returns a finished Arrow IPC file's (or stream's) row count
// and flowctl schema. The IPC formats keep no total row count, so every
// record batch's header is read (and its body, which arrow-go decodes
// with it): a resumed run reads the directory's Arrow files once.
func arrowRows(name string, stream bool) (rows int64, schema string, err error) {
	// arrow-go's readers index flatbuffers without bounds checks of their
	// own: a damaged file panics in them. It is an unreadable file here.
	defer func() {
		if r := recover(); r != nil {
			rows, schema, err = 0, "", fmt.Errorf("damaged Arrow IPC data: %v", r)
		}
	}()
	f, err := os.Open(name)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	var sch *arrow.Schema
	if stream {
		r, err := ipc.NewReader(bufio.NewReaderSize(f, 256<<10))
		if err != nil {
			return 0, "", err
		}
		defer r.Release()
		for r.Next() {
			rows += r.RecordBatch().NumRows()
		}
		if err := r.Err(); err != nil {
			return 0, "", err
		}
		sch = r.Schema()
	} else {
		r, err := ipc.NewFileReader(f)
		if err != nil {
			return 0, "", err
		}
		defer r.Close()
		for i := range r.NumRecords() {
			rec, err := r.RecordBatchAt(i)
			if err != nil {
				return 0, "", err
			}
			rows += rec.NumRows()
			rec.Release()
		}
		sch = r.Schema()
	}
	md := sch.Metadata()
	v, _ := md.GetValue(arrowFlowctlSchemaKey)
	return rows, v, nil
}

var _ tableWriter = (*arrowWriter)(nil)
