package components

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSink,
		Name:    "postgres",
		Summary: "Inserts (or, with key, upserts) each event's top-level JSON fields as a row of a PostgreSQL table, one transaction per batch.",
		Delivery: "Exactly once across a crash when its events come, in order, from sources that can be replayed: each batch's transaction also records the sink's position and its rows' transaction ids (tables flowctl_sink_positions and flowctl_sink_batches, in the table's schema); a resumed run deletes, in one transaction, the rows committed after the last checkpoint, and those events are inserted again. " +
			"With key nothing is deleted: a replayed event is upserted onto its own row, so no key is ever stored twice, whatever feeds the sink. " +
			"Without key it keeps every row (at-least-once) when fed by a source that cannot replay (stdin, http), when the engine finds no exact cut (several sources, an unordered parallel processor), when the rows after the checkpoint were changed by someone else, when the checkpoint lags more than 1,000,000 events behind, or when the table is a view or a foreign table; the log says so. The table should be the pipeline's own.",
		Fields: []flow.Field{
			{Name: "dsn", Type: flow.TypeString, Required: true, Example: "postgres://flowctl@127.0.0.1:5432/flowctl?sslmode=disable", Description: "The database: a libpq URL or key=value connection string; PG* environment variables and ~/.pgpass fill what it leaves out. Write ${PG_URL} to keep a password out of the file."},
			{Name: "table", Type: flow.TypeString, Required: true, Example: "payments", Description: "The table to write to, optionally schema-qualified (public.payments). Names are used exactly as written (quoted)."},
			{Name: "columns", Type: flow.TypeStrings, Description: "Top-level data fields to store, one column each; a missing field is NULL. Default: the first event's keys, sorted."},
			{Name: "types", Type: flow.TypeMap, Items: &flow.Field{Type: flow.TypeString}, Description: "SQL type per column for create, e.g. {amount: numeric}. Default: from the first value seen: bigint, double precision, text, boolean, jsonb (objects and arrays); text when every value is null."},
			{Name: "key", Type: flow.TypeStrings, Description: "Upsert on these columns (INSERT ... ON CONFLICT (key) DO UPDATE): the table needs a unique constraint on them; create makes them the primary key."},
			{Name: "create", Type: flow.TypeBool, Default: true, Description: "CREATE TABLE IF NOT EXISTS when the first batch comes. Set false to insert into an existing table only: a missing table then stops the run."},
		},
		Examples: []string{
			"dsn: ${PG_URL}\ntable: events",
			"dsn: ${PG_URL}\ntable: public.payments\ncolumns: [id, account, amount]\ntypes: {amount: numeric}\nkey: [id]",
		},
		Validate: validateWith(pgParseSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := pgParseSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name, s.pipeline = bc.Name, bc.Pipeline
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// The sink's own tables, in the table's schema: the position each batch's
// transaction reached, and which rows each recent batch inserted.
const (
	pgPositionsTable = "flowctl_sink_positions"
	pgBatchesTable   = "flowctl_sink_batches"
	// pgBatchWindow is how many events' worth of batches the sink keeps
	// in flowctl_sink_batches: a resumed run can cut back that far.
	pgBatchWindow = 1_000_000
)

// pgSink writes events as rows of a PostgreSQL table.
//
// Its checkpoint position counts the events it consumed (inserted, or
// failed and handed back for on_error) since the table's first run,
// across runs. Each batch's transaction stores the new count in
// flowctl_sink_positions and, in flowctl_sink_batches, the transaction
// ids (xmin) its rows carry, so the database always knows how far the
// table got and which rows each recent batch added. A resumed run is given
// the count committed with the sources' positions (Resume): it deletes the
// rows of the batches after it, in one transaction with moving the stored
// count back, and the replayed events are inserted again, in whatever
// order they come. With key it deletes nothing: replays are upserts.
type pgSink struct {
	name     string
	pipeline string
	cfg      *pgx.ConnConfig
	schema   string // "" for the search_path
	table    string
	columns  []string
	types    map[string]string
	key      []string
	create   bool

	log *slog.Logger
	// resume is the committed position to go on from, or -1 (first run,
	// or keep everything).
	resume int64

	mu     sync.Mutex
	conn   *pgx.Conn
	insert string // the INSERT statement, once the columns are known
	stored int64  // the position in flowctl_sink_positions

	pos      atomic.Int64 // events consumed (the checkpoint position)
	replayed atomic.Int64 // rows cut back on resume, or upserted again with key
}

// pgTypeRe is what a column type in config.types may look like: a name
// with optional words, a precision and array brackets ("numeric(12,2)",
// "double precision", "text[]"), nothing that could end the statement.
var pgTypeRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_ ]*(\([0-9, ]+\))?( ?\[\])*$`) })

func pgParseSink(cfg flow.Config) (*pgSink, error) {
	var errs []error
	p := &pgSink{resume: -1, create: ioCfgBool(cfg, "create", true)}
	dsn := ioCfgString(cfg, "dsn", "")
	if dsn == "" {
		errs = append(errs, ioFieldErr("dsn", "is required", "give the database's URL, e.g. dsn: ${PG_URL} with PG_URL=postgres://user@127.0.0.1:5432/db?sslmode=disable"))
	} else {
		c, err := pgx.ParseConfig(dsn)
		if err != nil {
			errs = append(errs, ioFieldErr("dsn", "is not a PostgreSQL connection string: "+pgParseErr(err), "write a URL (postgres://user:password@host:5432/db?sslmode=disable) or key=value pairs (host=... dbname=...)"))
		} else {
			if c.ConnectTimeout == 0 {
				c.ConnectTimeout = 10 * time.Second
			}
			p.cfg = c
		}
	}
	table := ioCfgString(cfg, "table", "")
	switch parts := strings.Split(table, "."); {
	case table == "":
		errs = append(errs, ioFieldErr("table", "is required", "name the table to write to, e.g. table: payments"))
	case len(parts) > 2 || slices.Contains(parts, ""):
		errs = append(errs, ioFieldErr("table", fmt.Sprintf("%q is not a table name", table), "write table or schema.table, e.g. public.payments"))
	case len(parts) == 2:
		p.schema, p.table = parts[0], parts[1]
	default:
		p.table = table
	}
	cols, err := ioCfgStrings(cfg, "columns")
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, pgCheckNames("columns", cols)...)
	p.columns = cols
	key, err := ioCfgStrings(cfg, "key")
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, pgCheckNames("key", key)...)
	p.key = key
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
	for _, c := range slices.Sorted(maps.Keys(types)) {
		t := strings.TrimSpace(types[c])
		if !pgTypeRe().MatchString(t) {
			errs = append(errs, ioFieldErr("types."+c, fmt.Sprintf("%q is not a column type", types[c]), "write a PostgreSQL type such as numeric, numeric(12,2), text, timestamptz, jsonb or text[]"))
		}
		if len(cols) > 0 && !slices.Contains(cols, c) {
			errs = append(errs, ioFieldErr("types."+c, fmt.Sprintf("%q is not one of the columns", c), "add it to columns, or remove its type"))
		}
		if types != nil {
			types[c] = t
		}
	}
	p.types = types
	return p, errors.Join(errs...)
}

// pgCheckNames reports empty and repeated names in a list field.
func pgCheckNames(field string, names []string) []error {
	var errs []error
	seen := map[string]bool{}
	for i, c := range names {
		if c == "" {
			errs = append(errs, ioFieldErr(fmt.Sprintf("%s[%d]", field, i), "is empty", "name a top-level field of the events"))
		} else if seen[c] {
			errs = append(errs, ioFieldErr(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("%q is listed twice", c), "list each column once"))
		}
		seen[c] = true
	}
	return errs
}

// pgParseErr is a DSN parse error without the DSN, which may hold a
// password: pgconn's message is "cannot parse `DSN`: what (why)".
func pgParseErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return msg[i+3:]
	}
	return "cannot parse it"
}

// ident quotes a name; the table's schema prefixes table names.
func (s *pgSink) ident(name string) string {
	if s.schema != "" {
		return pgx.Identifier{s.schema, name}.Sanitize()
	}
	return pgx.Identifier{name}.Sanitize()
}

// tableName is the table as written in config (for messages).
func (s *pgSink) tableName() string {
	if s.schema != "" {
		return s.schema + "." + s.table
	}
	return s.table
}

// where is the server and database, for messages and the output key.
func (s *pgSink) where() string {
	host := s.cfg.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(int(s.cfg.Port)))
	}
	return host + "/" + s.cfg.Database
}

// OutputKey implements flow.CheckpointSink: the server, database and table.
func (s *pgSink) OutputKey() string {
	if s.cfg == nil {
		return "postgres#" + s.tableName()
	}
	return "postgres://" + s.where() + "#" + s.tableName()
}

// Position implements flow.CheckpointSink: the events consumed so far.
func (s *pgSink) Position() int64 { return s.pos.Load() }

// Sync implements flow.CheckpointSink. Every batch was committed (and
// so made durable by PostgreSQL) before Write returned: nothing to do.
func (s *pgSink) Sync(context.Context) error { return nil }

// Replayed implements flow.ReplayCounter: replayed events skipped because
// the table already held them.
func (s *pgSink) Replayed() int64 { return s.replayed.Load() }

// Resume implements flow.CheckpointSink.
func (s *pgSink) Resume(pos int64, keepTail bool) error {
	if pos < 0 {
		return fmt.Errorf("sink %q: negative checkpoint %d", s.name, pos)
	}
	s.resume = pos
	if keepTail {
		s.resume = -1 // write every event that comes
	}
	return nil
}

// Open connects, makes sure the sink's own tables exist, reads the stored
// position, cuts the table back to the checkpoint when resuming and, with
// create false, checks that the table and its columns exist. It closes
// the connection again when it fails (the engine does not Close a
// component whose Open failed).
func (s *pgSink) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil {
		return fmt.Errorf("sink %q: config.dsn is missing or invalid", s.name)
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		s.conn.Close(ctx)
		s.conn = nil
		return err
	}
	return nil
}

func (s *pgSink) open(ctx context.Context) error {
	stored := s.stored
	switch {
	case s.resume < 0 || stored == s.resume:
		s.pos.Store(stored)
	case stored < s.resume:
		return fmt.Errorf("sink %q: %s says %s holds %d events, fewer than the %d committed at the last checkpoint: it was changed outside flowctl — put it back, or start over with flowctl run --from-start (or flowctl state reset)",
			s.name, pgPositionsTable, s.tableName(), stored, s.resume)
	case len(s.key) > 0:
		// Upserts: the replayed events overwrite their own rows.
		s.pos.Store(stored)
		s.replayed.Store(stored - s.resume)
		s.log.Info("events written after the last checkpoint are sent again and upserted on the key", "table", s.tableName(), "events", stored-s.resume)
	default:
		if err := s.cutBack(ctx); err != nil {
			return err
		}
	}
	if !s.create {
		ok, err := s.tableExists(ctx)
		if err != nil {
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
		if !ok {
			return fmt.Errorf("sink %q: table %s does not exist in %s — create it, or set create: true in the sink's config", s.name, s.tableName(), s.where())
		}
		if len(s.columns) > 0 {
			if err := s.checkColumns(ctx); err != nil {
				return fmt.Errorf("sink %q: %w", s.name, err)
			}
		}
	}
	return nil
}

// connect opens the connection, creates flowctl_sink_positions if needed
// and reads the stored position.
func (s *pgSink) connect(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("sink %q: %w", s.name, s.connectErr(err))
	}
	var stored int64
	for attempt := 1; ; attempt++ {
		// Two sinks creating the table at once can collide on the catalog;
		// the second attempt then finds it.
		_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.ident(pgPositionsTable)+
			` (pipeline text NOT NULL, sink text NOT NULL, "table" text NOT NULL, position bigint NOT NULL, updated timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, sink, "table"))`)
		if err == nil {
			// position: the count after the batch; events: how many it
			// consumed; inserted: the rows it added; xid: their xmin.
			_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.ident(pgBatchesTable)+
				` (pipeline text NOT NULL, sink text NOT NULL, "table" text NOT NULL, position bigint NOT NULL, events bigint NOT NULL, inserted bigint NOT NULL, xid bigint NOT NULL, PRIMARY KEY (pipeline, sink, "table", position))`)
		}
		if err == nil || attempt == 3 || !pgIsCode(err, "23505", "42P07") {
			break
		}
	}
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT coalesce(max(position), 0) FROM "+s.ident(pgPositionsTable)+` WHERE pipeline = $1 AND sink = $2 AND "table" = $3`,
			s.pipeline, s.name, s.tableName()).Scan(&stored)
	}
	if err != nil {
		conn.Close(ctx)
		return fmt.Errorf("sink %q: prepare %s and %s in %s: %w%s", s.name, s.ident(pgPositionsTable), s.ident(pgBatchesTable), s.where(), err, pgHint(err))
	}
	s.conn, s.stored = conn, stored
	return nil
}

// cutBack deletes, in one transaction, the rows of the batches committed
// after the checkpoint (s.resume) and moves the stored position back to
// it: their events are sent again. When the batches are not all recorded
// (the checkpoint lags more than pgBatchWindow events) or the rows they
// name are not all there (changed by someone else), it deletes nothing and
// keeps every row: the replayed events are then stored twice, and the log
// says so.
func (s *pgSink) cutBack(ctx context.Context) error {
	keep := func(why string) {
		s.log.Warn("cannot cut the table back to the last checkpoint: the events written after it are stored again (at-least-once)", "table", s.tableName(), "reason", why)
		s.pos.Store(s.stored)
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sink %q: begin: %w", s.name, err)
	}
	defer tx.Rollback(ctx) // no-op after Commit
	var kind string
	if err := tx.QueryRow(ctx, "SELECT coalesce((SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)), '')", s.ident(s.table)).Scan(&kind); err != nil {
		return fmt.Errorf("sink %q: look up table %s: %w", s.name, s.tableName(), err)
	}
	switch kind {
	case "r", "p": // a table, a partitioned table
	case "":
		keep("the table is not there")
		return nil
	default:
		keep("not a table (a view or a foreign table): its rows cannot be found by transaction id")
		return nil
	}
	rows, err := tx.Query(ctx, "SELECT position, events, inserted, xid FROM "+s.ident(pgBatchesTable)+
		` WHERE pipeline = $1 AND sink = $2 AND "table" = $3 AND position > $4 ORDER BY position`, s.pipeline, s.name, s.tableName(), s.resume)
	if err != nil {
		return fmt.Errorf("sink %q: read %s: %w", s.name, pgBatchesTable, err)
	}
	at, inserted := s.resume, int64(0)
	xids := map[int64]bool{}
	var pos, events, n, xid int64
	errGap := errors.New("a batch is not recorded")
	_, err = pgx.ForEachRow(rows, []any{&pos, &events, &n, &xid}, func() error {
		if pos-events != at {
			return errGap
		}
		at, inserted = pos, inserted+n
		if n > 0 {
			xids[xid] = true
		}
		return nil
	})
	if err != nil && !errors.Is(err, errGap) {
		return fmt.Errorf("sink %q: read %s: %w", s.name, pgBatchesTable, err)
	}
	if err != nil || at != s.stored {
		keep(fmt.Sprintf("%s does not record every batch after the checkpoint (event %d of %d): it keeps the last %d events' worth", pgBatchesTable, s.resume, s.stored, pgBatchWindow))
		return nil
	}
	res, err := tx.Exec(ctx, "DELETE FROM "+s.ident(s.table)+" WHERE xmin::text::bigint = ANY($1)", slices.Collect(maps.Keys(xids)))
	if err != nil {
		return fmt.Errorf("sink %q: cut %s back to its checkpoint: %w%s", s.name, s.tableName(), err, pgHint(err))
	}
	if res.RowsAffected() != inserted {
		keep(fmt.Sprintf("the batches after the checkpoint inserted %d rows, %d of them are there as inserted (changed by someone else?)", inserted, res.RowsAffected()))
		return nil
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+s.ident(pgBatchesTable)+` WHERE pipeline = $1 AND sink = $2 AND "table" = $3 AND position > $4`,
		s.pipeline, s.name, s.tableName(), s.resume); err != nil {
		return fmt.Errorf("sink %q: cut %s back: %w", s.name, pgBatchesTable, err)
	}
	if err := s.storePosition(ctx, tx, s.resume); err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sink %q: cut %s back: commit: %w", s.name, s.tableName(), err)
	}
	s.stored = s.resume
	s.pos.Store(s.resume)
	s.replayed.Store(inserted)
	if inserted > 0 {
		s.log.Info("deleted the rows inserted after the last checkpoint; those events are inserted again", "table", s.tableName(), "rows", inserted)
	}
	return nil
}

// storePosition records pos in flowctl_sink_positions, in tx.
func (s *pgSink) storePosition(ctx context.Context, tx pgx.Tx, pos int64) error {
	if _, err := tx.Exec(ctx, "INSERT INTO "+s.ident(pgPositionsTable)+` (pipeline, sink, "table", position) VALUES ($1, $2, $3, $4)
		ON CONFLICT (pipeline, sink, "table") DO UPDATE SET position = EXCLUDED.position, updated = now()`,
		s.pipeline, s.name, s.tableName(), pos); err != nil {
		return s.statementErr("store the position in "+pgPositionsTable, err)
	}
	return nil
}

// connectErr says what a failed connection needs.
func (s *pgSink) connectErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01" || pe.Code == "28000":
			return fmt.Errorf("connect to PostgreSQL at %s as %q: authentication failed (%s) — check the user and password in config.dsn (a password can also come from PGPASSWORD or ~/.pgpass)", s.where(), s.cfg.User, pe.Message)
		case pe.Code == "3D000":
			return fmt.Errorf("connect to PostgreSQL at %s: %s — create it (createdb %s) or fix the database name in config.dsn", s.where(), pe.Message, s.cfg.Database)
		}
		return fmt.Errorf("connect to PostgreSQL at %s: %s (SQLSTATE %s)", s.where(), pe.Message, pe.Code)
	}
	return fmt.Errorf("cannot connect to PostgreSQL at %s: %v — is the server running and listening there? Check host and port in config.dsn", s.where(), errors.Unwrap(err))
}

func (s *pgSink) tableExists(ctx context.Context) (bool, error) {
	var ok bool
	err := s.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.ident(s.table)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up table %s: %w", s.tableName(), err)
	}
	return ok, nil
}

// checkColumns fails naming the configured columns the table lacks.
func (s *pgSink) checkColumns(ctx context.Context) error {
	rows, err := s.conn.Query(ctx, "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped", s.ident(s.table))
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", s.tableName(), err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", s.tableName(), err)
	}
	var missing []string
	for _, c := range s.columns {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("table %s has no column %s — add it (ALTER TABLE %s ADD COLUMN %s <type>), or leave it out of config.columns",
			s.tableName(), strings.Join(missing, ", "), s.ident(s.table), pgx.Identifier{missing[0]}.Sanitize())
	}
	return nil
}

// prepare fixes the columns (from config or the first object in the
// batch), creates the table if asked, checks that the columns exist and
// builds the INSERT.
func (s *pgSink) prepare(ctx context.Context, objs []map[string]any) error {
	if len(s.columns) == 0 {
		cols, err := sqlInferColumns(objs, s.key)
		if err != nil || cols == nil {
			return err // nil while there is nothing to learn from yet
		}
		s.columns = cols
	}
	if s.create {
		defs := make([]string, len(s.columns), len(s.columns)+1)
		for i, c := range s.columns {
			t := sqlColumnType(c, s.types, objs, pgType, "text")
			defs[i] = pgx.Identifier{c}.Sanitize() + " " + t
		}
		if len(s.key) > 0 {
			defs = append(defs, "PRIMARY KEY ("+pgIdents(s.key)+")")
		}
		stmt := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", s.ident(s.table), strings.Join(defs, ", "))
		if _, err := s.conn.Exec(ctx, stmt); err != nil {
			return s.statementErr("create table "+s.tableName(), err)
		}
	} else if ok, err := s.tableExists(ctx); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: table %s does not exist in %s — create it, or set create: true in the sink's config", flow.ErrStopRun, s.tableName(), s.where())
	}
	if err := s.checkColumns(ctx); err != nil {
		return fmt.Errorf("%w: %w", flow.ErrStopRun, err)
	}
	ph := make([]string, len(s.columns))
	for i := range ph {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	ins := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", s.ident(s.table), pgIdents(s.columns), strings.Join(ph, ", "))
	if len(s.key) > 0 {
		var set []string
		for _, c := range s.columns {
			if !slices.Contains(s.key, c) {
				q := pgx.Identifier{c}.Sanitize()
				set = append(set, q+" = EXCLUDED."+q)
			}
		}
		if len(set) == 0 {
			ins += " ON CONFLICT (" + pgIdents(s.key) + ") DO NOTHING"
		} else {
			ins += " ON CONFLICT (" + pgIdents(s.key) + ") DO UPDATE SET " + strings.Join(set, ", ")
		}
	}
	s.insert = ins
	return nil
}

func pgIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// pgType is the column type create gives a JSON value; "" for null.
func pgType(v any) string {
	switch v.(type) {
	case int64:
		return "bigint"
	case float64:
		return "double precision"
	case string:
		return "text"
	case bool:
		return "boolean"
	case map[string]any, []any:
		return "jsonb"
	}
	return ""
}

// pgValue is the text PostgreSQL parses into the column's type: the
// server converts (and refuses a value its column cannot take, an error
// for that row alone), whatever the column's type is. Objects and arrays
// are JSON text.
func pgValue(v any) (any, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case string:
		return t, nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(t), nil
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
}

// Write writes the batch in one transaction, which also stores the new
// position. Replayed events the table already holds are skipped. An event
// whose data is not a JSON object, or whose row PostgreSQL refuses for
// its data (a value its column cannot take, a NOT NULL or CHECK
// violation), fails alone: it is reported in a *flow.BatchError as
// flow.ErrPermanent (on_error's next step, e.g. the dead-letter sink, has
// it with the reason); the other rows are committed. A lost connection
// fails the whole batch, which the engine retries (the next Write
// reconnects); a table or column that is not there stops the run.
func (s *pgSink) Write(ctx context.Context, batch []*flow.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || s.conn.IsClosed() {
		if s.conn != nil {
			s.conn = nil
		}
		if s.cfg == nil {
			return fmt.Errorf("sink %q: write before open", s.name)
		}
		if err := s.connect(ctx); err != nil {
			return err
		}
	}
	// Events the table holds already: a batch whose commit went through
	// though its answer was lost (the engine sends it again; reconnecting
	// read the stored position).
	skip := min(max(s.stored-s.pos.Load(), 0), int64(len(batch)))
	if skip > 0 {
		s.pos.Add(skip)
		s.replayed.Add(skip)
		batch = batch[skip:]
		if len(batch) == 0 {
			return nil
		}
	}
	failed := map[int]error{}
	objs := make([]map[string]any, len(batch))
	for i, e := range batch {
		v, err := e.Value()
		if err != nil {
			failed[i] = pgPermanent(fmt.Errorf("postgres sink needs JSON object data: %w", err))
			continue
		}
		o, ok := v.(map[string]any)
		if !ok {
			failed[i] = pgPermanent(fmt.Errorf("postgres sink needs JSON object data, got %s", flow.JSONKind(v)))
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
				failed[i] = pgPermanent(errors.New("postgres sink cannot choose columns from an empty object; set config.columns"))
			}
		}
		return s.shift(&flow.BatchError{Failed: failed}, int(skip), int(skip)+len(batch))
	}
	if err := s.insertRows(ctx, objs, failed); err != nil {
		if s.conn != nil && s.conn.IsClosed() {
			s.conn = nil
		}
		return s.shift(fmt.Errorf("sink %q: %w", s.name, err), int(skip), int(skip)+len(batch))
	}
	if len(failed) > 0 {
		return s.shift(&flow.BatchError{Failed: failed}, int(skip), int(skip)+len(batch))
	}
	return nil
}

// shift renumbers a *flow.BatchError's events past the skipped ones, and
// fails the whole batch after them otherwise (the skipped ones are
// written, the engine retries the rest).
func (s *pgSink) shift(err error, skip, n int) error {
	if skip == 0 {
		return err
	}
	be, ok := err.(*flow.BatchError)
	if !ok {
		if errors.Is(err, flow.ErrStopRun) {
			return err
		}
		failed := map[int]error{}
		for i := skip; i < n; i++ {
			failed[i] = err
		}
		return &flow.BatchError{Failed: failed}
	}
	out := make(map[int]error, len(be.Failed))
	for i, e := range be.Failed {
		out[i+skip] = e
	}
	return &flow.BatchError{Failed: out}
}

// insertRows inserts the objects in one transaction (failed holds the
// events not to insert and gets the rows PostgreSQL refuses), which also
// stores the new position and, without key, records the batch.
//
// All rows go in one round trip (a pgx batch). When a row is refused for
// its data the transaction is rolled back and tried again without it: one
// more round trip per bad row. No savepoints, so every row of a batch
// carries the transaction's own id (xmin), which is what a resumed run
// deletes them by.
func (s *pgSink) insertRows(ctx context.Context, objs []map[string]any, failed map[int]error) error {
	args := make([][]any, len(objs))
	for i, o := range objs {
		if o == nil {
			continue
		}
		row := make([]any, len(s.columns))
		for j, c := range s.columns {
			v, err := pgValue(o[c])
			if err != nil {
				failed[i] = pgPermanent(fmt.Errorf("column %s: %w", c, err))
				row = nil
				break
			}
			row[j] = v
		}
		args[i] = row
	}
	// Each attempt but the last takes one more row out: bounded.
	for range len(objs) + 1 {
		bad, err := s.tryRows(ctx, args, failed, int64(len(objs)))
		if err == nil {
			return nil
		}
		if bad < 0 {
			return err
		}
		failed[bad] = pgPermanent(fmt.Errorf("insert into %s: %w", s.tableName(), pgErrText(err)))
	}
	return fmt.Errorf("insert into %s: every row was refused and the batch still failed", s.tableName())
}

// tryRows is one attempt of insertRows: bad is the index of the row
// PostgreSQL refused for its data (err says why), or -1.
func (s *pgSink) tryRows(ctx context.Context, args [][]any, failed map[int]error, events int64) (bad int, err error) {
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return -1, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) // no-op after Commit
	b := &pgx.Batch{}
	var idx []int
	for i, row := range args {
		if row != nil && failed[i] == nil {
			b.Queue(s.insert, row...)
			idx = append(idx, i)
		}
	}
	if len(idx) > 0 {
		br := tx.SendBatch(ctx, b)
		for _, i := range idx {
			if _, err := br.Exec(); err != nil {
				br.Close()
				if pgIsDataErr(err) {
					return i, err
				}
				return -1, s.statementErr("insert into "+s.tableName(), err)
			}
		}
		if err := br.Close(); err != nil {
			return -1, s.statementErr("insert into "+s.tableName(), err)
		}
	}
	next := s.pos.Load() + events
	if err := s.storePosition(ctx, tx, next); err != nil {
		return -1, err
	}
	if len(s.key) == 0 {
		b := &pgx.Batch{}
		// xmin is the 32-bit transaction id; txid_current() adds an epoch.
		b.Queue("INSERT INTO "+s.ident(pgBatchesTable)+` (pipeline, sink, "table", position, events, inserted, xid) VALUES ($1, $2, $3, $4, $5, $6, txid_current() % 4294967296)
			ON CONFLICT (pipeline, sink, "table", position) DO UPDATE SET events = EXCLUDED.events, inserted = EXCLUDED.inserted, xid = EXCLUDED.xid`,
			s.pipeline, s.name, s.tableName(), next, events, int64(len(idx)))
		b.Queue("DELETE FROM "+s.ident(pgBatchesTable)+` WHERE pipeline = $1 AND sink = $2 AND "table" = $3 AND position <= $4`,
			s.pipeline, s.name, s.tableName(), next-pgBatchWindow)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return -1, s.statementErr("record the batch in "+pgBatchesTable, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return -1, fmt.Errorf("commit: %w", err)
	}
	s.stored = next
	s.pos.Store(next)
	return -1, nil
}

// statementErr wraps a failed statement: a table, column or constraint
// that is not there, or a missing privilege, stops the run with what to
// do; anything else (a lost connection) is for the engine to retry.
func (s *pgSink) statementErr(what string, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", what, err)
	}
	hint := pgHint(err)
	switch pe.Code {
	case "42P01":
		return fmt.Errorf("%w: %s: table %s does not exist — create it, or set create: true", flow.ErrStopRun, what, s.tableName())
	case "42703":
		return fmt.Errorf("%w: %s: %s — add the column to the table, or leave it out of config.columns", flow.ErrStopRun, what, pe.Message)
	case "42P10":
		return fmt.Errorf("%w: %s: table %s has no unique constraint on (%s) — add one (ALTER TABLE %s ADD UNIQUE (%s)), or remove config.key",
			flow.ErrStopRun, what, s.tableName(), strings.Join(s.key, ", "), s.ident(s.table), pgIdents(s.key))
	case "42501", "42601", "42704", "42804", "3F000":
		return fmt.Errorf("%w: %s: %s (SQLSTATE %s)%s", flow.ErrStopRun, what, pe.Message, pe.Code, hint)
	}
	return fmt.Errorf("%s: %s (SQLSTATE %s)%s", what, pe.Message, pe.Code, hint)
}

// pgHint is " — what to do" for a few server errors.
func pgHint(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return ""
	}
	switch pe.Code {
	case "42501":
		return " — grant the DSN's user the privilege (GRANT INSERT, UPDATE, SELECT ON ... / CREATE ON SCHEMA ...)"
	case "3F000":
		return " — create the schema (CREATE SCHEMA ...) or fix config.table"
	case "42704":
		return " — fix the type in config.types"
	}
	if pe.Detail != "" {
		return " — " + pe.Detail
	}
	return ""
}

// pgIsDataErr reports whether the server refused a row for its data:
// SQLSTATE class 22 (data exception) or 23 (integrity constraint).
func pgIsDataErr(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

func pgIsCode(err error, codes ...string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && slices.Contains(codes, pe.Code)
}

// pgRowErr is a row's own failure: trying it again cannot help
// (errors.Is(err, flow.ErrPermanent)), and its text is only the reason.
type pgRowErr struct{ err error }

func pgPermanent(err error) error { return &pgRowErr{err} }

func (e *pgRowErr) Error() string        { return e.err.Error() }
func (e *pgRowErr) Unwrap() error        { return e.err }
func (e *pgRowErr) Is(target error) bool { return target == flow.ErrPermanent }

// pgErrText is a server error as a dead letter's reason: the message,
// the detail when there is one, and the SQLSTATE.
func pgErrText(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	msg := pe.Message
	if pe.Detail != "" {
		msg += " (" + pe.Detail + ")"
	}
	return fmt.Errorf("%s [SQLSTATE %s]", msg, pe.Code)
}

// Close closes the connection.
func (s *pgSink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	if err != nil {
		return fmt.Errorf("sink %q: close: %w", s.name, err)
	}
	return nil
}

var (
	_ flow.Sink   = (*pgSink)(nil)
	_ flow.Opener = (*pgSink)(nil)
	_ flow.Closer = (*pgSink)(nil)

	_ flow.CheckpointSink = (*pgSink)(nil)
	_ flow.ReplayCounter  = (*pgSink)(nil)
)
