package components

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/flowctl/flowctl/internal/flow"
)

// The DuckDB sink needs cgo and a large native library, so it is built only
// with the duckdb build tag (sink_duckdb.go). Its spec, config and checks
// live here, untagged, so that `flowctl components duckdb` and the JSON
// Schema describe it the same in every build; sink_duckdb_absent.go
// registers it with an error saying how to get it.

// optionalParts lists the optional parts built into this binary (set by
// the build-tagged files' init).
var optionalParts []string

// OptionalParts returns the optional parts this binary was built with,
// sorted (for `flowctl version`).
func OptionalParts() []string { return slices.Sorted(slices.Values(optionalParts)) }

// OptionalHint says how to build a binary with every optional part.
const OptionalHint = "build with go build -tags arrow ./cmd/flowctl for Arrow IPC output, CGO_ENABLED=1 go build -tags duckdb ./cmd/flowctl for DuckDB, -tags arrow,duckdb for both"

// errNoDuckDB is what a binary built without the duckdb tag says when a
// pipeline uses the duckdb sink.
var errNoDuckDB error = &flow.NotBuiltError{Reason: "this flowctl was built without DuckDB (it needs cgo): build it with `CGO_ENABLED=1 go build -tags duckdb ./cmd/flowctl`"}

func duckdbSpec(validate func(flow.Config) error, build func(flow.BuildContext) (any, error)) *flow.ComponentSpec {
	return &flow.ComponentSpec{
		Role:    flow.RoleSink,
		Name:    "duckdb",
		Summary: "Inserts (or, with key, upserts) each event's top-level JSON fields as a row of a DuckDB table, one transaction per batch. Only in binaries built with -tags duckdb (cgo).",
		Delivery: "Exactly once across a crash when its events come, in order, from sources that can be replayed: each batch's transaction also records the sink's position and how many rows it appended (tables flowctl_sink_positions and flowctl_sink_batches, in the same database); a resumed run deletes, in one transaction, the rows appended after the last checkpoint (the table's last rows), and those events are inserted again. " +
			"With key nothing is deleted: a replayed event is upserted onto its own row. " +
			"Without key it keeps every row (at-least-once) when fed by a source that cannot replay (stdin, http), when the engine finds no exact cut, or when the checkpoint lags more than 1,000,000 events behind; the log says so. The table must be the pipeline's own: rows others append after a checkpoint may be the ones deleted.",
		Fields: []flow.Field{
			{Name: "path", Type: flow.TypeString, Required: true, Example: "events.duckdb", Description: "The database file (created if missing); relative paths are resolved against the pipeline file's directory. DuckDB lets one process write a file at a time."},
			{Name: "table", Type: flow.TypeString, Required: true, Example: "payments", Description: "The table to write to, optionally schema-qualified (main.payments). Names are used exactly as written (quoted)."},
			{Name: "columns", Type: flow.TypeStrings, Description: "Top-level data fields to store, one column each; a missing field is NULL. Default: the first event's keys, sorted."},
			{Name: "types", Type: flow.TypeMap, Items: &flow.Field{Type: flow.TypeString}, Description: "DuckDB type per column for create, e.g. {amount: \"DECIMAL(12,2)\", at: TIMESTAMP} (quote a type with a comma). Default: from the first value seen: BIGINT, DOUBLE, VARCHAR, BOOLEAN, JSON (objects and arrays); VARCHAR when every value is null."},
			{Name: "key", Type: flow.TypeStrings, Description: "Upsert on these columns (INSERT ... ON CONFLICT (key) DO UPDATE): the table needs a primary key or unique constraint on them; create makes them the primary key."},
			{Name: "create", Type: flow.TypeBool, Default: true, Description: "CREATE TABLE IF NOT EXISTS when the first batch comes. Set false to insert into an existing table only: a missing table then stops the run."},
		},
		Examples: []string{
			"path: events.duckdb\ntable: events",
			"path: ledger.duckdb\ntable: payments\ncolumns: [id, account, amount]\ntypes: {amount: \"DECIMAL(12,2)\"}\nkey: [id]",
		},
		Validate: validate,
		New:      build,
	}
}

// duckdbConfig is the sink's parsed config.
type duckdbConfig struct {
	path    string
	schema  string // "" for the default schema
	table   string
	columns []string
	types   map[string]string
	key     []string
	create  bool
}

func duckdbParseConfig(cfg flow.Config) (*duckdbConfig, error) {
	var errs []error
	c := &duckdbConfig{path: ioCfgString(cfg, "path", ""), create: ioCfgBool(cfg, "create", true)}
	if c.path == "" {
		errs = append(errs, ioFieldErr("path", "is required", "name the database file, e.g. path: events.duckdb"))
	}
	table := ioCfgString(cfg, "table", "")
	switch parts := strings.Split(table, "."); {
	case table == "":
		errs = append(errs, ioFieldErr("table", "is required", "name the table to write to, e.g. table: events"))
	case len(parts) > 2 || slices.Contains(parts, ""):
		errs = append(errs, ioFieldErr("table", fmt.Sprintf("%q is not a table name", table), "write table or schema.table, e.g. main.payments"))
	case len(parts) == 2:
		c.schema, c.table = parts[0], parts[1]
	default:
		c.table = table
	}
	cols, err := ioCfgStrings(cfg, "columns")
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, pgCheckNames("columns", cols)...)
	c.columns = cols
	key, err := ioCfgStrings(cfg, "key")
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, pgCheckNames("key", key)...)
	c.key = key
	if len(cols) > 0 {
		for i, k := range key {
			if k != "" && !slices.Contains(cols, k) {
				errs = append(errs, ioFieldErr(fmt.Sprintf("key[%d]", i), fmt.Sprintf("%q is not one of the columns", k), "add it to columns, or take it out of key"))
			}
		}
	}
	types, err := ioCfgStringMap(cfg, "types")
	if err != nil {
		errs = append(errs, err)
	}
	for _, col := range slices.Sorted(maps.Keys(types)) {
		t := strings.TrimSpace(types[col])
		// The same shape as PostgreSQL's: a name with words, a
		// precision, array brackets; nothing that could end the statement.
		if !pgTypeRe().MatchString(t) {
			errs = append(errs, ioFieldErr("types."+col, fmt.Sprintf("%q is not a column type", types[col]), "write a DuckDB type such as BIGINT, DOUBLE, DECIMAL(12,2), VARCHAR, TIMESTAMP, JSON or VARCHAR[]"))
		}
		if len(cols) > 0 && !slices.Contains(cols, col) {
			errs = append(errs, ioFieldErr("types."+col, fmt.Sprintf("%q is not one of the columns", col), "add it to columns, or remove its type"))
		}
		types[col] = t
	}
	c.types = types
	return c, errors.Join(errs...)
}
