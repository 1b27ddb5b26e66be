package components

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/flowctl/flowctl/internal/flow"

	_ "modernc.org/sqlite" // the pure-Go driver "sqlite"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSink,
		Name:     "sqlite",
		Summary:  "Inserts each event's top-level JSON fields as a row of a SQLite table, one transaction per batch.",
		Delivery: "Exactly once across a crash when its events come, in order, from sources that can be replayed: a resumed run deletes the rows inserted after the last checkpoint (rowid above the committed one), which are inserted again. The table should be the pipeline's own: rows others insert after a checkpoint are deleted too. Otherwise at-least-once, also when the table's INTEGER PRIMARY KEY (its rowid) is written from the events: rowids then do not follow the order of insertion, and every row is kept.",
		Fields: []flow.Field{
			{Name: "path", Type: flow.TypeString, Required: true, Example: "events.db", Description: "The database file (created if missing, WAL mode); relative paths are resolved against the pipeline file's directory."},
			{Name: "table", Type: flow.TypeString, Required: true, Example: "payments", Description: "The table to insert into."},
			{Name: "columns", Type: flow.TypeStrings, Description: "Top-level data fields to store, one column each. Default: the first event's keys, sorted."},
			{Name: "create", Type: flow.TypeBool, Default: true, Description: "CREATE TABLE IF NOT EXISTS, typing each column from the first value seen: INTEGER, REAL, TEXT (objects and arrays as JSON text)."},
		},
		Examples: []string{"path: events.db\ntable: events", "path: ledger.db\ntable: payments\ncolumns: [id, account, amount]"},
		Validate: validateWith(ioParseSQLiteSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := ioParseSQLiteSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.path = ioResolvePath(bc.Dir, s.path)
			if abs, err := filepath.Abs(s.path); err == nil {
				s.path = abs
			}
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// sqliteSink writes events as rows. The table's columns are fixed by the
// first batch (from config or from the first event) and never change.
type sqliteSink struct {
	name    string
	path    string
	table   string
	columns []string
	create  bool

	log *slog.Logger
	// resume is the committed rowid to keep up to, or -1 on a first run.
	resume int64

	mu       sync.Mutex
	db       *sql.DB
	insert   string       // the INSERT statement, once the columns are known
	lastRow  atomic.Int64 // rowid of the last row inserted (the checkpoint position)
	replayed atomic.Int64 // rows deleted on resume, to be inserted again
}

func ioParseSQLiteSink(cfg flow.Config) (*sqliteSink, error) {
	var errs []error
	s := &sqliteSink{
		resume: -1,
		path:   ioCfgString(cfg, "path", ""),
		table:  ioCfgString(cfg, "table", ""),
		create: ioCfgBool(cfg, "create", true),
	}
	if s.path == "" {
		errs = append(errs, ioFieldErr("path", "is required", "name the database file, e.g. path: events.db"))
	} else if strings.Contains(s.path, "?") {
		errs = append(errs, ioFieldErr("path", "must not contain '?'", "rename the file"))
	}
	if s.table == "" {
		errs = append(errs, ioFieldErr("table", "is required", "name the table to insert into, e.g. table: events"))
	}
	cols, err := ioCfgStrings(cfg, "columns")
	if err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, c := range cols {
		if c == "" {
			errs = append(errs, ioFieldErr(fmt.Sprintf("columns[%d]", i), "is empty", "name a top-level field of the events"))
		} else if seen[c] {
			errs = append(errs, ioFieldErr(fmt.Sprintf("columns[%d]", i), fmt.Sprintf("%q is listed twice", c), "list each column once"))
		}
		seen[c] = true
	}
	s.columns = cols
	return s, errors.Join(errs...)
}

// ioQuoteIdent quotes an SQL identifier, so any table or field name works.
func ioQuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// Open opens (or creates) the database in WAL mode, so readers can query
// it while the pipeline writes.
func (s *sqliteSink) Open(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("sink %q: create directory for %s: %w", s.name, s.path, err)
	}
	db, err := sql.Open("sqlite", s.path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return fmt.Errorf("sink %q: open %s: %w", s.name, s.path, err)
	}
	// One connection: SQLite has one writer anyway, and per-connection
	// pragmas then hold for every statement.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("sink %q: open %s: %w — check that the path is a writable SQLite file", s.name, s.path, err)
	}
	if err := s.cutBack(ctx, db); err != nil {
		db.Close()
		return err
	}
	s.db = db
	return nil
}

// cutBack deletes, when resuming, the rows inserted after the committed
// one (their events are inserted again), and notes the last rowid.
func (s *sqliteSink) cutBack(ctx context.Context, db *sql.DB) error {
	var exists int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", s.table).Scan(&exists); err != nil {
		return fmt.Errorf("sink %q: read %s: %w", s.name, s.path, err)
	}
	if exists == 0 {
		return nil
	}
	tbl := ioQuoteIdent(s.table)
	if s.resume >= 0 {
		alias, err := s.writtenRowidAlias(ctx, db)
		if err != nil {
			return err
		}
		if alias != "" {
			// The rowids are the events' own values, not the order of
			// insertion: the rows above the committed one are not those
			// inserted after it. Keep every row (at-least-once).
			s.log.Warn("the table's rowid is its INTEGER PRIMARY KEY column, written from the events: the rows inserted after the last checkpoint cannot be told apart, so every row is kept and those events are inserted again (a duplicate key fails to the dead letter)", "table", s.table, "column", alias)
			s.resume = -1
		}
	}
	if s.resume >= 0 {
		res, err := db.ExecContext(ctx, "DELETE FROM "+tbl+" WHERE rowid > ?", s.resume)
		if err != nil {
			return fmt.Errorf("sink %q: cut %s back to its checkpoint: %w", s.name, s.table, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			s.replayed.Store(n)
			s.log.Info("deleted the rows inserted after the last checkpoint; those events are inserted again", "table", s.table, "rows", n)
		}
	}
	var last sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT max(rowid) FROM "+tbl).Scan(&last); err != nil {
		return fmt.Errorf("sink %q: read %s: %w", s.name, s.table, err)
	}
	s.lastRow.Store(last.Int64)
	return nil
}

// writtenRowidAlias returns the table's INTEGER PRIMARY KEY column (the
// rowid under another name) when the sink may write it: all columns are
// inferred from the first event, or it is listed. "" otherwise.
func (s *sqliteSink) writtenRowidAlias(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "SELECT name, type, pk FROM pragma_table_info(?)", s.table)
	if err != nil {
		return "", fmt.Errorf("sink %q: read the columns of %s: %w", s.name, s.table, err)
	}
	defer rows.Close()
	var alias string
	pks := 0
	for rows.Next() {
		var name, typ string
		var pk int
		if err := rows.Scan(&name, &typ, &pk); err != nil {
			return "", fmt.Errorf("sink %q: read the columns of %s: %w", s.name, s.table, err)
		}
		if pk > 0 {
			pks++
			if strings.EqualFold(typ, "INTEGER") {
				alias = name
			}
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("sink %q: read the columns of %s: %w", s.name, s.table, err)
	}
	if pks != 1 || alias == "" || (len(s.columns) > 0 && !slices.Contains(s.columns, alias)) {
		return "", nil
	}
	return alias, nil
}

// OutputKey implements flow.CheckpointSink: the database and table.
func (s *sqliteSink) OutputKey() string { return s.path + "#" + s.table }

// Position implements flow.CheckpointSink: the rowid of the last row
// inserted.
func (s *sqliteSink) Position() int64 { return s.lastRow.Load() }

// Sync implements flow.CheckpointSink: the WAL is synced to disk (a
// passive WAL checkpoint syncs it first), so committed rows survive a
// power loss too.
func (s *sqliteSink) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return fmt.Errorf("sink %q: sync %s: %w", s.name, s.path, err)
	}
	return nil
}

// Replayed implements flow.ReplayCounter: the rows inserted after the
// checkpoint that a resumed run deleted (their events are inserted again).
func (s *sqliteSink) Replayed() int64 { return s.replayed.Load() }

// Resume implements flow.CheckpointSink.
func (s *sqliteSink) Resume(pos int64, keepTail bool) error {
	if pos < 0 {
		return fmt.Errorf("sink %q: negative checkpoint %d", s.name, pos)
	}
	s.resume = pos
	if keepTail {
		s.resume = -1 // keep every row
	}
	return nil
}

// prepare fixes the columns (from config or the first object in the
// batch), creates the table if asked, and builds the INSERT.
func (s *sqliteSink) prepare(ctx context.Context, objs []map[string]any) error {
	if len(s.columns) == 0 {
		for _, o := range objs {
			if o == nil {
				continue
			}
			for k := range o {
				s.columns = append(s.columns, k)
			}
			slices.Sort(s.columns)
			break
		}
		if len(s.columns) == 0 {
			return nil // nothing to learn from yet (no object, or an empty one)
		}
	}
	if s.create {
		defs := make([]string, len(s.columns))
		for i, c := range s.columns {
			defs[i] = ioQuoteIdent(c)
			for _, o := range objs {
				if t := ioSQLiteType(o[c]); t != "" {
					defs[i] += " " + t
					break
				}
			}
		}
		stmt := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", ioQuoteIdent(s.table), strings.Join(defs, ", "))
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create table %s: %w", s.table, err)
		}
	}
	quoted := make([]string, len(s.columns))
	for i, c := range s.columns {
		quoted[i] = ioQuoteIdent(c)
	}
	s.insert = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", ioQuoteIdent(s.table),
		strings.Join(quoted, ", "), strings.TrimSuffix(strings.Repeat("?, ", len(s.columns)), ", "))
	return nil
}

// ioSQLiteType is the column type for a JSON value; "" for null (SQLite
// then gives the column no affinity).
func ioSQLiteType(v any) string {
	switch v.(type) {
	case int64, bool:
		return "INTEGER"
	case float64:
		return "REAL"
	case string, map[string]any, []any:
		return "TEXT"
	}
	return ""
}

// ioSQLiteValue converts a JSON value to a driver value: objects and arrays
// become JSON text, booleans 0/1.
func ioSQLiteValue(v any) (any, error) {
	switch t := v.(type) {
	case nil, int64, float64, string:
		return t, nil
	case bool:
		if t {
			return int64(1), nil
		}
		return int64(0), nil
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
}

// Write inserts the batch in one transaction with one prepared statement.
// An event whose data is not a JSON object, or whose row SQLite refuses
// (a constraint), is reported in a *flow.BatchError; the other rows are
// committed.
func (s *sqliteSink) Write(ctx context.Context, batch []*flow.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return fmt.Errorf("sink %q: write before open", s.name)
	}
	failed := map[int]error{}
	objs := make([]map[string]any, len(batch))
	for i, e := range batch {
		v, err := e.Value()
		if err != nil {
			failed[i] = fmt.Errorf("sqlite sink needs JSON object data: %w", err)
			continue
		}
		o, ok := v.(map[string]any)
		if !ok {
			failed[i] = fmt.Errorf("sqlite sink needs JSON object data, got %s", flow.JSONKind(v))
			continue
		}
		objs[i] = o
	}
	if s.insert == "" {
		if err := s.prepare(ctx, objs); err != nil {
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
	}
	if s.insert == "" {
		// No object to take columns from: every event failed or was {}.
		for i := range batch {
			if _, ok := failed[i]; !ok {
				failed[i] = errors.New("sqlite sink cannot choose columns from an empty object; set config.columns")
			}
		}
		return &flow.BatchError{Failed: failed}
	}
	if err := s.insertRows(ctx, objs, failed); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	if len(failed) > 0 {
		return &flow.BatchError{Failed: failed}
	}
	return nil
}

func (s *sqliteSink) insertRows(ctx context.Context, objs []map[string]any, failed map[int]error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	stmt, err := tx.PrepareContext(ctx, s.insert)
	if err != nil {
		return fmt.Errorf("prepare insert into %s: %w — does the table have the columns %s?", s.table, err, strings.Join(s.columns, ", "))
	}
	defer stmt.Close()
	args := make([]any, len(s.columns))
	var last int64
	for i, o := range objs {
		if o == nil {
			continue
		}
		var bad error
		for j, c := range s.columns {
			if args[j], bad = ioSQLiteValue(o[c]); bad != nil {
				break
			}
		}
		if bad == nil {
			var res sql.Result
			if res, bad = stmt.ExecContext(ctx, args...); bad == nil {
				last, _ = res.LastInsertId()
			}
		}
		if bad != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed[i] = fmt.Errorf("insert into %s: %w", s.table, bad)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if last > 0 {
		s.lastRow.Store(last)
	}
	return nil
}

// Close closes the database (a WAL checkpoint happens on the last close).
func (s *sqliteSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("sink %q: close %s: %w", s.name, s.path, err)
	}
	return nil
}

var (
	_ flow.Sink   = (*sqliteSink)(nil)
	_ flow.Opener = (*sqliteSink)(nil)
	_ flow.Closer = (*sqliteSink)(nil)

	_ flow.CheckpointSink = (*sqliteSink)(nil)
	_ flow.ReplayCounter  = (*sqliteSink)(nil)
)
