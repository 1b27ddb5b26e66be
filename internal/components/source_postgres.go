package components

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSource,
		Name:    "postgres",
		Summary: "Reads a PostgreSQL database: its changes through logical replication (mode cdc, pgoutput, a replication slot) or new rows of a table by an increasing column (mode poll).",
		Delivery: "cdc: at-least-once, kept by the replication slot rather than by flowctl's checkpoint: the slot's confirmed position moves past a transaction only once every event of it (and of every transaction before) was written by every sink, filtered or dead-lettered, so after a crash PostgreSQL sends again every transaction not confirmed — those written but not yet confirmed (a status update goes out as soon as a transaction is written in full, at most every 20ms, so that is what a kill catches between the write and the update, or a transaction written only in part) are the ones written twice. " +
			"poll: resumes after the last acknowledged value of column, kept in flowctl's checkpoint, so a file sink cuts back what it wrote after it and nothing is lost or written twice; rows committed later with a value not above one already read are never read (use cdc for those).",
		Fields: []flow.Field{
			{Name: "dsn", Type: flow.TypeString, Required: true, Example: "postgres://flowctl@127.0.0.1:5432/shop?sslmode=disable",
				Description: "The database: a libpq URL or key=value connection string; PG* environment variables and ~/.pgpass fill what it leaves out. Write ${PG_URL} to keep a password out of the file. In mode cdc the user needs the REPLICATION attribute (or superuser)."},
			{Name: "mode", Type: flow.TypeString, Enum: []string{"cdc", "poll"},
				Description: "cdc: every insert, update, delete and truncate of the published tables, through logical replication; poll: new rows by an increasing column. Default: poll when column is given, else cdc."},
			{Name: "publication", Type: flow.TypeString,
				Description: "cdc: the publication naming the tables to read. Default: the slot's name. It must exist, unless create_publication is set."},
			{Name: "slot", Type: flow.TypeString,
				Description: "cdc: the logical replication slot (plugin pgoutput) that keeps the position on the server; created when missing. Default: flowctl_<pipeline>_<component>, lower-cased, other characters than a-z, 0-9 and _ replaced by _. A slot keeps WAL until it is read: drop one no longer used (SELECT pg_drop_replication_slot('name'))."},
			{Name: "tables", Type: flow.TypeStrings, Example: []any{"public.orders", "public.customers"},
				Description: "cdc with create_publication: the tables the new publication takes (table or schema.table); none: FOR ALL TABLES (superuser only)."},
			{Name: "create_publication", Type: flow.TypeBool, Default: false,
				Description: "cdc: create the publication (CREATE PUBLICATION ... FOR TABLE tables) when it does not exist; the user must own the tables. An existing publication is used as it is."},
			{Name: "status_interval", Type: flow.TypeDuration, Default: "1s",
				Description: "cdc: the keepalive: the source tells the server how far the pipeline wrote (the slot's confirmed position) at least this often, and also as soon as a transaction was written in full."},
			{Name: "table", Type: flow.TypeString, Example: "public.orders",
				Description: "poll: the table to read (table or schema.table). One of table and query."},
			{Name: "query", Type: flow.TypeString, Example: "SELECT id, total FROM orders WHERE status = 'paid'",
				Description: "poll: a SELECT whose rows are read in place of a table; it must return column."},
			{Name: "column", Type: flow.TypeString, Example: "id",
				Description: "poll: the increasing column (a sequence id, an updated_at timestamp): rows are read in its order, WHERE column > the last value read. Rows sharing a value are read together."},
			{Name: "interval", Type: flow.TypeDuration, Default: "1s",
				Description: "poll: how long to wait before asking again when there were no new rows."},
			{Name: "batch", Type: flow.TypeInt, Default: 256,
				Description: "poll: most rows read per query (1–10000). cdc: most events per batch handed to the pipeline."},
			{Name: "event_type", Type: flow.TypeString, Default: "postgres",
				Description: "The prefix of the events' type: <event_type>.insert, .update, .delete, .truncate (cdc); <event_type>.row (poll)."},
		},
		Examples: []string{
			"dsn: ${PG_URL}\npublication: orders_pub",
			"dsn: ${PG_URL}\ntables: [public.orders]\ncreate_publication: true\nslot: orders_to_files",
			"dsn: ${PG_URL}\nmode: poll\ntable: orders\ncolumn: id\ninterval: 5s",
		},
		Validate: validateWith(pgParseSource),
		OutputTypes: func(_ string, cfg flow.Config, _ []string) ([]string, bool) {
			s, err := pgParseSource(cfg)
			if err != nil {
				return nil, false
			}
			if s.poll {
				return []string{s.eventType + ".row"}, true
			}
			return []string{s.eventType + ".insert", s.eventType + ".update", s.eventType + ".delete", s.eventType + ".truncate"}, true
		},
		New: func(bc flow.BuildContext) (any, error) {
			s, err := pgParseSource(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			if s.poll {
				return &pgPollSource{pgSourceConf: s}, nil
			}
			if s.slot == "" {
				s.slot = pgSlotName("flowctl_" + bc.Pipeline + "_" + bc.Name)
			}
			if s.publication == "" {
				s.publication = s.slot
			}
			return &pgCDCSource{pgSourceConf: s}, nil
		},
	})
}

// pgSourceConf is the parsed config of both modes.
type pgSourceConf struct {
	name      string
	log       *slog.Logger
	cfg       *pgx.ConnConfig
	poll      bool
	eventType string
	batch     int

	// cdc
	slot, publication string
	tables            []string
	createPub         bool
	statusInterval    time.Duration

	// poll
	table, query, column string
	interval             time.Duration
}

// pgSlotName makes a default slot name: PostgreSQL takes lower-case
// letters, digits and _ (at most 63 bytes).
func pgSlotName(s string) string {
	s = strings.Map(func(r rune) rune {
		r = unicode.ToLower(r)
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

func pgValidSlot(s string) bool { return s != "" && pgSlotName(s) == s }

func pgParseSource(cfg flow.Config) (*pgSourceConf, error) {
	var errs []error
	s := &pgSourceConf{
		eventType:   ioCfgString(cfg, "event_type", "postgres"),
		slot:        ioCfgString(cfg, "slot", ""),
		publication: ioCfgString(cfg, "publication", ""),
		createPub:   ioCfgBool(cfg, "create_publication", false),
		table:       ioCfgString(cfg, "table", ""),
		query:       strings.TrimSpace(ioCfgString(cfg, "query", "")),
		column:      ioCfgString(cfg, "column", ""),
	}
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
			// Values as text in UTC and ISO style, whatever the server's
			// defaults: timestamps are then parsed one way.
			c.RuntimeParams["TimeZone"] = "UTC"
			c.RuntimeParams["DateStyle"] = "ISO, YMD"
			s.cfg = c
		}
	}
	mode := ioCfgString(cfg, "mode", "")
	switch mode {
	case "":
		s.poll = s.column != ""
	case "poll":
		s.poll = true
	case "cdc":
	default:
		errs = append(errs, ioFieldErr("mode", fmt.Sprintf("unknown mode %q", mode), `use "cdc" (logical replication) or "poll" (an increasing column)`))
	}
	if s.eventType == "" {
		errs = append(errs, ioFieldErr("event_type", "is empty", "leave it out for postgres.insert etc., or give a prefix"))
	}
	var err error
	if s.batch, err = cfgIntIn(cfg, "batch", 256, 1, 10000); err != nil {
		errs = append(errs, err)
	}
	tables, err := ioCfgStrings(cfg, "tables")
	if err != nil {
		errs = append(errs, err)
	}
	for i, t := range tables {
		if _, _, ok := pgSplitTable(t); !ok {
			errs = append(errs, ioFieldErr(fmt.Sprintf("tables[%d]", i), fmt.Sprintf("%q is not a table name", t), "write table or schema.table, e.g. public.orders"))
		}
	}
	s.tables = tables
	si, err := ioCfgDuration(cfg, "status_interval", time.Second)
	if err == nil && si < 10*time.Millisecond {
		err = ioFieldErr("status_interval", "must be at least 10ms", `use e.g. "1s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.statusInterval = si
	iv, err := ioCfgDuration(cfg, "interval", time.Second)
	if err == nil && iv <= 0 {
		err = ioFieldErr("interval", "must be positive", `use e.g. "1s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.interval = iv

	if s.poll {
		// Fields with a default are in cfg once defaults are applied: only
		// those without one are checked.
		for _, f := range []string{"slot", "publication", "tables"} {
			if _, ok := cfg[f]; ok {
				errs = append(errs, ioFieldErr(f, "is for mode cdc", "remove it, or use mode: cdc"))
			}
		}
		switch {
		case s.column == "":
			errs = append(errs, ioFieldErr("column", "is required in mode poll", "name the increasing column, e.g. column: id"))
		case strings.ContainsAny(s.column, "\"\x00"):
			errs = append(errs, ioFieldErr("column", fmt.Sprintf("%q is not a column name", s.column), "write the column's name as it is, without quotes"))
		}
		switch {
		case s.table == "" && s.query == "":
			errs = append(errs, ioFieldErr("table", "is required in mode poll (or query)", "name the table to read, e.g. table: orders"))
		case s.table != "" && s.query != "":
			errs = append(errs, ioFieldErr("query", "is given with table", "give one of table and query"))
		case s.table != "":
			if _, _, ok := pgSplitTable(s.table); !ok {
				errs = append(errs, ioFieldErr("table", fmt.Sprintf("%q is not a table name", s.table), "write table or schema.table, e.g. public.orders"))
			}
		case strings.Contains(s.query, ";"):
			errs = append(errs, ioFieldErr("query", "holds a ;", "give one SELECT, without a trailing ;"))
		}
	} else {
		for _, f := range []string{"table", "query", "column"} {
			if _, ok := cfg[f]; ok {
				errs = append(errs, ioFieldErr(f, "is for mode poll", "remove it, or use mode: poll (with column)"))
			}
		}
		if s.slot != "" && !pgValidSlot(s.slot) {
			errs = append(errs, ioFieldErr("slot", fmt.Sprintf("%q is not a slot name", s.slot), "use lower-case letters, digits and _ (at most 63)"))
		}
		if len(tables) > 0 && !s.createPub {
			errs = append(errs, ioFieldErr("tables", "is used only with create_publication: true", "set create_publication: true, or remove tables and name an existing publication"))
		}
	}
	return s, errors.Join(errs...)
}

// pgSplitTable splits table or schema.table.
func pgSplitTable(t string) (schema, table string, ok bool) {
	parts := strings.Split(t, ".")
	switch {
	case t == "" || len(parts) > 2 || strings.ContainsRune(t, '"'):
		return "", "", false
	case len(parts) == 2:
		return parts[0], parts[1], parts[0] != "" && parts[1] != ""
	}
	return "", t, true
}

// pgQuoteTable quotes table or schema.table.
func pgQuoteTable(t string) string {
	schema, table, _ := pgSplitTable(t)
	if schema == "" {
		return pgx.Identifier{table}.Sanitize()
	}
	return pgx.Identifier{schema, table}.Sanitize()
}

func (s *pgSourceConf) where() string {
	return fmt.Sprintf("%s:%d/%s", s.cfg.Host, s.cfg.Port, s.cfg.Database)
}

// connectErr says what a failed connection needs; replication adds the
// REPLICATION attribute to what may be missing.
func (s *pgSourceConf) connectErr(err error, replication bool) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01":
			return fmt.Errorf("source %q: connect to PostgreSQL at %s as %q: authentication failed (%s) — check the user and password in config.dsn (a password can also come from PGPASSWORD or ~/.pgpass)", s.name, s.where(), s.cfg.User, pe.Message)
		case pe.Code == "3D000":
			return fmt.Errorf("source %q: connect to PostgreSQL at %s: %s — create it or fix the database name in config.dsn", s.name, s.where(), pe.Message)
		case replication && (pe.Code == "42501" || pe.Code == "28000"):
			return fmt.Errorf("source %q: open a replication connection to %s as %q: %s — the user needs the REPLICATION attribute (ALTER ROLE %s REPLICATION) and pg_hba.conf must allow it replication connections", s.name, s.where(), s.cfg.User, pe.Message, pgx.Identifier{s.cfg.User}.Sanitize())
		}
		return fmt.Errorf("source %q: connect to PostgreSQL at %s: %s (SQLSTATE %s)", s.name, s.where(), pe.Message, pe.Code)
	}
	return fmt.Errorf("source %q: cannot connect to PostgreSQL at %s: %v — is the server running and listening there? Check host and port in config.dsn", s.name, s.where(), errors.Unwrap(err))
}
