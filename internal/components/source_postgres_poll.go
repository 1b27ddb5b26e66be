package components

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowctl/flowctl/internal/flow"
)

// pgPollSource reads new rows of a table (or a query) in the order of an
// increasing column: WHERE column > last ORDER BY column LIMIT batch.
//
// Its position is the last value of column whose row was acknowledged,
// in flowctl's checkpoint (EmitAt, Resume): the engine commits it only
// once every batch up to it was written, and a file sink cuts back what
// it wrote after it, so a crash loses and repeats nothing.
//
// Rows sharing a value are read in one go: a full fetch drops its
// trailing rows of the last value (the next query starts before them),
// and a fetch that is all one value reads every row of that value. A
// position is only ever a value whose rows were all emitted.
type pgPollSource struct {
	*pgSourceConf

	conn  *pgx.Conn
	last  *string // the last value read (text), nil: from the start
	first string  // SELECT of the first rows
	after string  // SELECT of the rows after $2
	equal string  // SELECT of every row with value $1
}

// pgPollPos is the checkpointed position.
type pgPollPos struct {
	Value string `json:"value"`
}

// Resume implements flow.Resumer.
func (s *pgPollSource) Resume(positions map[string][]byte) error {
	v, ok := positions[""]
	if !ok {
		return nil
	}
	var p pgPollPos
	if err := json.Unmarshal(v, &p); err != nil {
		return fmt.Errorf("source %q: checkpoint: %w", s.name, err)
	}
	s.last = &p.Value
	return nil
}

// Open connects and finds column's type, so that a missing column or
// table stops the run before any event flows.
func (s *pgPollSource) Open(ctx context.Context) error {
	if s.cfg == nil {
		return fmt.Errorf("source %q: no dsn", s.name)
	}
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return s.connectErr(err, false)
	}
	s.conn = conn
	from := "(" + s.query + ")"
	what := "query"
	if s.table != "" {
		from, what = pgQuoteTable(s.table), "table "+s.table
	}
	col := "q." + pgx.Identifier{s.column}.Sanitize()
	sd, err := conn.Prepare(ctx, "", "SELECT "+col+" FROM "+from+" q LIMIT 0")
	if err != nil {
		hint := pgHint(err)
		switch {
		case pgIsCode(err, "42703"):
			hint = " — config.column must name a column the " + what + " returns"
		case pgIsCode(err, "42P01"):
			hint = " — check config.table (schema.table), or the search_path of the DSN's user"
		}
		return fmt.Errorf("source %q: read %s: %w%s", s.name, what, err, hint)
	}
	var typ string
	if err := conn.QueryRow(ctx, "SELECT format_type($1::oid, NULL)", sd.Fields[0].DataTypeOID).Scan(&typ); err != nil {
		return fmt.Errorf("source %q: type of column %q: %w", s.name, s.column, err)
	}
	sel := "SELECT to_jsonb(q)::text, (" + col + ")::text FROM " + from + " q WHERE "
	s.first = sel + col + " IS NOT NULL ORDER BY " + col + " LIMIT $1"
	s.after = sel + col + " > $2::text::" + typ + " ORDER BY " + col + " LIMIT $1"
	s.equal = sel + col + " = $1::text::" + typ
	if s.last != nil {
		s.log.Info("resuming", "column", s.column, "after", *s.last)
	}
	return nil
}

type pgPollRow struct{ data, value string }

func (s *pgPollSource) fetch(ctx context.Context, sql string, args ...any) ([]pgPollRow, error) {
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgPollRow, error) {
		var p pgPollRow
		err := r.Scan(&p.data, &p.value)
		return p, err
	})
}

// next returns the next rows, whole groups of equal values only.
func (s *pgPollSource) next(ctx context.Context) ([]pgPollRow, error) {
	var rows []pgPollRow
	var err error
	if s.last == nil {
		rows, err = s.fetch(ctx, s.first, s.batch)
	} else {
		rows, err = s.fetch(ctx, s.after, s.batch, *s.last)
	}
	if err != nil || len(rows) < s.batch {
		return rows, err
	}
	v := rows[len(rows)-1].value
	i := len(rows)
	for i > 0 && rows[i-1].value == v {
		i--
	}
	if i > 0 {
		return rows[:i], nil // the last value's rows come whole next time
	}
	return s.fetch(ctx, s.equal, v)
}

// Run polls until ctx is done.
func (s *pgPollSource) Run(ctx context.Context, out flow.Emitter) error {
	if s.conn == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	pe, _ := out.(flow.PositionEmitter)
	for ctx.Err() == nil {
		rows, err := s.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("source %q: poll: %w%s", s.name, err, pgHint(err))
		}
		if len(rows) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(s.interval):
			}
			continue
		}
		if err := s.emit(ctx, out, pe, rows); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

// emit hands rows over in batches; a batch's position is its last value
// only when that value's rows end with it.
func (s *pgPollSource) emit(ctx context.Context, out flow.Emitter, pe flow.PositionEmitter, rows []pgPollRow) error {
	now := time.Now().UTC()
	k := 0
	for i := 0; i < len(rows); i += flow.MaxBatch {
		j := min(i+flow.MaxBatch, len(rows))
		batch := flow.NewBatch()
		for n, r := range rows[i:j] {
			if i+n > 0 && rows[i+n-1].value != r.value {
				k = 0
			}
			batch = append(batch, &flow.Event{
				ID:              s.name + ":" + r.value + ":" + strconv.Itoa(k),
				Source:          s.name,
				Type:            s.eventType + ".row",
				Subject:         s.table,
				DataContentType: "application/json",
				Time:            now,
				Data:            []byte(r.data),
				Metadata:        map[string]string{"pg_column": s.column, "pg_value": r.value},
			})
			k++
		}
		last := rows[j-1].value
		var pos flow.Position
		if j == len(rows) || rows[j].value != last {
			pos.Value, _ = json.Marshal(pgPollPos{Value: last})
		}
		var err error
		if pe != nil {
			err = pe.EmitAt(ctx, batch, pos)
		} else {
			err = out.Emit(ctx, batch, nil)
		}
		if err != nil {
			return err
		}
	}
	s.last = &rows[len(rows)-1].value
	return nil
}

// Close closes the connection.
func (s *pgPollSource) Close(ctx context.Context) error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	return err
}

var (
	_ flow.Source  = (*pgPollSource)(nil)
	_ flow.Opener  = (*pgPollSource)(nil)
	_ flow.Closer  = (*pgPollSource)(nil)
	_ flow.Resumer = (*pgPollSource)(nil)
)
