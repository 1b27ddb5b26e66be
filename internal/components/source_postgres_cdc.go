package components

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/backoff"
)

// pgCDCSource reads a database's changes through logical replication
// (plugin pgoutput, protocol 1) from a replication slot.
//
// Its position is the slot's, kept by the server: the source is not a
// flow.Resumer, so a file sink behind it keeps what it wrote after the
// last checkpoint and no event is lost by being cut from the output and
// not sent again. The slot's confirmed position moves, with each status
// update, to the end of the last transaction whose events were all
// acknowledged, with every transaction before it:
//
//	batches:  0 1 2 | 3 4 | 5     (| a commit after batch 2 and 4)
//	acked:    ✓ ✓ ✓   ✓ ✗   ✓     → confirmed: the end of the first txn
//
// After a crash the server sends again every transaction after the
// confirmed position.
type pgCDCSource struct {
	*pgSourceConf

	conn *pgconn.PgConn // the replication connection

	mu      sync.Mutex
	next    uint64            // seq of the next batch
	acked   uint64            // every batch below is acknowledged
	ahead   map[uint64]bool   // acknowledged past a gap
	commits []pgCommitMark    // transactions not yet confirmable, in order
	flushed pglogrepl.LSN     // confirmable: every txn up to it was written
	failed  error             // a batch failed (the run stops): confirm no further
	rels    map[uint32]*pgRel // relations by id, from Relation messages

	received  atomic.Uint64 // end of the last WAL data received (an LSN)
	statusReq chan struct{} // the reader asks statusLoop for an update

	// What was queued, so that after a reconnection the transactions the
	// server sends again (everything after the slot's confirmed
	// position) are not emitted twice. Only the reader uses them.
	queuedTx      pglogrepl.LSN // commit LSN of the last transaction queued whole
	partialTx     pglogrepl.LSN // commit LSN of a transaction queued in part ...
	partialEvents int           // ... and how many of its events were queued
}

// pgCommitMark: once every batch below seq is acknowledged, the
// transaction ending at end is written.
type pgCommitMark struct {
	seq uint64
	end pglogrepl.LSN
}

// pgRel is a relation as the Relation message described it.
type pgRel struct {
	schema, table string
	cols          []pgCol
}

type pgCol struct {
	name string
	oid  uint32
	key  bool
}

// Open connects for replication, checks wal_level, the publication and
// the slot (creating what is missing and may be created), so that a
// wrong setting stops the run before any event flows, with the fix.
func (s *pgCDCSource) Open(ctx context.Context) error {
	if s.cfg == nil {
		return fmt.Errorf("source %q: no dsn", s.name)
	}
	if err := s.prepare(ctx); err != nil {
		return err
	}
	rc := s.cfg.Config.Copy()
	rc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, rc)
	if err != nil {
		return s.connectErr(err, true)
	}
	s.conn = conn
	// The slot exists once Open returns: changes committed from then on
	// are read.
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.conn, s.slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	switch {
	case err == nil:
		s.setStart(res.ConsistentPoint)
		s.log.Info("created replication slot: changes from now on are read", "slot", s.slot)
	case pgIsCode(err, "42710"):
		// exists: go on from its confirmed position
	case pgIsCode(err, "53400"):
		return fmt.Errorf("source %q: create replication slot %q: %w — every slot is in use: raise max_replication_slots (restart needed) or drop unused slots (SELECT slot_name FROM pg_replication_slots)", s.name, s.slot, err)
	default:
		return fmt.Errorf("source %q: create replication slot %q: %w", s.name, s.slot, err)
	}
	s.rels = map[uint32]*pgRel{}
	s.ahead = map[uint64]bool{}
	return nil
}

// prepare checks, over an ordinary connection, what replication needs.
func (s *pgCDCSource) prepare(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return s.connectErr(err, false)
	}
	defer conn.Close(context.Background())
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("source %q: SHOW wal_level: %w", s.name, err)
	}
	if level != "logical" {
		return fmt.Errorf("source %q: the server at %s has wal_level = %s; change data capture needs wal_level = logical — set it in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL; max_replication_slots and max_wal_senders must be at least 1", s.name, s.where(), level)
	}
	var pubExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.publication).Scan(&pubExists); err != nil {
		return fmt.Errorf("source %q: look up publication %q: %w", s.name, s.publication, err)
	}
	switch {
	case pubExists:
	case !s.createPub:
		return fmt.Errorf("source %q: publication %q does not exist in %s — create it (CREATE PUBLICATION %s FOR TABLE ...), or set create_publication: true and list the tables", s.name, s.publication, s.where(), pgx.Identifier{s.publication}.Sanitize())
	default:
		stmt := "CREATE PUBLICATION " + pgx.Identifier{s.publication}.Sanitize()
		if len(s.tables) == 0 {
			stmt += " FOR ALL TABLES"
		} else {
			q := make([]string, len(s.tables))
			for i, t := range s.tables {
				q[i] = pgQuoteTable(t)
			}
			stmt += " FOR TABLE " + strings.Join(q, ", ")
		}
		if _, err := conn.Exec(ctx, stmt); err != nil && !pgIsCode(err, "42710") {
			hint := pgHint(err)
			if pgIsCode(err, "42501") {
				hint = " — the user must own the tables (FOR ALL TABLES: be superuser), or have the publication created for it"
			}
			return fmt.Errorf("source %q: %s: %w%s", s.name, stmt, err, hint)
		}
		s.log.Info("created publication", "publication", s.publication, "tables", s.tables)
	}
	var plugin, db, confirmed string
	err = conn.QueryRow(ctx, "SELECT coalesce(plugin, ''), coalesce(database, ''), coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1", s.slot).Scan(&plugin, &db, &confirmed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// created on the replication connection, below
	case err != nil:
		return fmt.Errorf("source %q: look up replication slot %q: %w", s.name, s.slot, err)
	case plugin != "pgoutput" || db != s.cfg.Database:
		return fmt.Errorf("source %q: replication slot %q exists with plugin %q on database %q; this source needs a pgoutput slot on %q — choose another slot name, or drop it (SELECT pg_drop_replication_slot('%s'))", s.name, s.slot, plugin, db, s.cfg.Database, s.slot)
	default:
		s.setStart(confirmed)
	}
	return nil
}

// setStart sets the confirmable position to where the slot starts. A
// status update must never say 0: pglogrepl then reports the received
// position as flushed, which would confirm events not yet written.
func (s *pgCDCSource) setStart(lsn string) {
	if l, err := pglogrepl.ParseLSN(lsn); err == nil {
		s.mu.Lock()
		s.flushed = max(s.flushed, l)
		s.mu.Unlock()
	}
}

// Run creates the slot if missing, starts replication from the slot's
// confirmed position and emits until ctx is done. When the replication
// connection breaks (the server restarts, the network drops, an
// administrator ends the walsender), it connects again with backoff and
// goes on from the slot's confirmed position, skipping what it had
// already queued: nothing is lost and nothing emitted twice.
func (s *pgCDCSource) Run(ctx context.Context, out flow.Emitter) error {
	if s.conn == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	// The emitter hands the reader's batches to the pipeline through a
	// small queue; it outlives reconnections.
	queue := make(chan pgCDCBatch, 2)
	s.statusReq = make(chan struct{}, 1) // before any ack can come
	stopped := make(chan struct{})       // closed when the emitter ended
	var emitErr error
	go func() {
		defer close(stopped)
		emitErr = s.emitLoop(ctx, out, queue)
	}()
	defer func() {
		close(queue)
		<-stopped
	}()
	bo := backoff.New(backoff.Policy{Base: 100 * time.Millisecond, Max: 30 * time.Second, Jitter: backoff.DefaultJitter})
	first := true
	for {
		err := s.replicate(ctx, queue, stopped, first)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errPGEmitStopped):
			<-stopped
			return fmt.Errorf("source %q: %w", s.name, emitErr)
		case err == nil:
			return nil
		case !pgConnectionLost(err):
			return err
		}
		// Connect again, with backoff, for as long as the run lasts.
		for {
			d := bo.Next()
			s.log.Warn("replication connection lost; connecting again", "err", err, "in", d.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-stopped:
				return fmt.Errorf("source %q: %w", s.name, emitErr)
			case <-time.After(d):
			}
			if err = s.reconnect(ctx); err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if !pgConnectionLost(err) {
				return err
			}
		}
		bo.Reset()
		first = false
	}
}

// reconnect replaces the broken replication connection with a new one.
func (s *pgCDCSource) reconnect(ctx context.Context) error {
	if s.conn != nil {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		s.conn.Close(cctx)
		cancel()
		s.conn = nil
	}
	rc := s.cfg.Config.Copy()
	rc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, rc)
	if err != nil {
		return &pgLostError{err}
	}
	s.conn = conn
	return nil
}

// pgLostError marks an error of the replication connection itself (not of
// what it carried): connecting again may cure it.
type pgLostError struct{ err error }

func (e *pgLostError) Error() string { return e.err.Error() }
func (e *pgLostError) Unwrap() error { return e.err }

// pgConnectionLost reports whether err is a broken or refused
// replication connection that connecting again may cure: a network
// error, or the server saying it is shutting down, starting, out of
// connections, or (just after a reconnection) that the old walsender
// still holds the slot.
func pgConnectionLost(err error) bool {
	var lost *pgLostError
	if !errors.As(err, &lost) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300" || pe.Code == "55006"
	}
	return true // no answer from the server: the connection broke
}

// replicate runs one replication connection: it starts replication and
// reads until ctx ends, the emitter stops, or the connection fails.
func (s *pgCDCSource) replicate(ctx context.Context, queue chan<- pgCDCBatch, stopped <-chan struct{}, first bool) error {
	args := []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(s.publication, "'", "''") + "'"}
	if err := pglogrepl.StartReplication(ctx, s.conn, s.slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if pgIsCode(err, "55006") && first {
			return fmt.Errorf("source %q: start replication from slot %q: %w — another process reads this slot (another run of this pipeline?); give each source its own slot", s.name, s.slot, err)
		}
		return &pgLostError{fmt.Errorf("source %q: start replication from slot %q: %w", s.name, s.slot, err)}
	}
	s.log.Info("replicating", "slot", s.slot, "publication", s.publication)

	// The reader (this goroutine) only reads the connection and the
	// status sender only writes it. While the queue is full (the
	// pipeline is), the reader reads nothing more, but status updates
	// still go out, so the server does not time the connection out.
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	statusDone := make(chan struct{})
	var statusErr error
	go func() {
		defer close(statusDone)
		if statusErr = s.statusLoop(rctx); statusErr != nil {
			rcancel() // ends the reader's receive
		}
	}()
	err := s.read(rctx, queue, stopped)
	rcancel()
	<-statusDone
	switch {
	case ctx.Err() != nil:
		return nil
	case statusErr != nil:
		return statusErr
	}
	return err
}

// statusLoop sends a status update every status_interval and when the
// reader asks for one (the server requested a reply), until ctx ends. It
// is the only writer on the connection while replication runs.
func (s *pgCDCSource) statusLoop(ctx context.Context) error {
	t := time.NewTicker(s.statusInterval)
	defer t.Stop()
	var last pglogrepl.LSN
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.statusReq:
		}
		f := s.confirmed()
		if f == 0 {
			continue // never 0: see setStart
		}
		err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: max(pglogrepl.LSN(s.received.Load()), f), WALFlushPosition: f, WALApplyPosition: f, ClientTime: time.Now(),
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return &pgLostError{fmt.Errorf("source %q: send status update: %w", s.name, err)}
		}
		if f != last {
			s.log.Debug("confirmed", "lsn", f.String())
			last = f
		}
		// At most one update per pgStatusGap: many small transactions
		// are confirmed together.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pgStatusGap):
		}
	}
}

// pgStatusGap is the least time between two status updates.
const pgStatusGap = 20 * time.Millisecond

// errPGEmitStopped: the emitter ended (Emit failed); its error says why.
var errPGEmitStopped = errors.New("emitter stopped")

// pgCDCBatch is a batch of events with its seq and, when it ends a
// transaction, the transaction's end.
type pgCDCBatch struct {
	seq    uint64
	events []*flow.Event
}

func (s *pgCDCSource) emitLoop(ctx context.Context, out flow.Emitter, queue <-chan pgCDCBatch) error {
	for b := range queue {
		seq := b.seq
		if err := out.Emit(ctx, b.events, func(err error) { s.done(seq, err) }); err != nil {
			for range queue { // let the reader end
			}
			return err
		}
	}
	return nil
}

// done records batch seq's acknowledgement and moves the confirmable
// position over every transaction now written.
func (s *pgCDCSource) done(seq uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.failed == nil {
			s.failed = err
		}
		return
	}
	if seq != s.acked {
		s.ahead[seq] = true
	} else {
		s.acked++
		for s.ahead[s.acked] {
			delete(s.ahead, s.acked)
			s.acked++
		}
	}
	s.advance()
}

// advance moves flushed over the commits whose batches are all acked.
// Called with mu held.
func (s *pgCDCSource) advance() {
	if s.failed != nil {
		return
	}
	i := 0
	for i < len(s.commits) && s.commits[i].seq <= s.acked {
		s.flushed = s.commits[i].end
		i++
	}
	s.commits = s.commits[i:]
	if i > 0 && s.statusReq != nil {
		// Confirm a written transaction now, not at the next tick: what a
		// crash makes the server send again is then only what was in
		// flight, not up to status_interval of transactions.
		select {
		case s.statusReq <- struct{}{}:
		default: // an update is already due
		}
	}
}

// confirmed returns the position to report as flushed.
func (s *pgCDCSource) confirmed() pglogrepl.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushed
}

// read is the replication loop: it decodes messages into batches and
// queues them; it asks statusLoop for a status update when the server
// requests one.
func (s *pgCDCSource) read(ctx context.Context, queue chan<- pgCDCBatch, stopped <-chan struct{}) error {
	var (
		cur     []*flow.Event // the batch being filled
		txLSN   pglogrepl.LSN // the open transaction's commit LSN
		txTime  time.Time
		txIndex int
		skipTx  bool // the open transaction was queued before: drop it
		skipN   int  // drop this many more events of the open transaction
	)
	// flush queues the batch being filled; commit says it ends a
	// transaction whose end is end.
	flush := func(commit bool, end pglogrepl.LSN) error {
		s.mu.Lock()
		var b pgCDCBatch
		if len(cur) > 0 {
			b = pgCDCBatch{seq: s.next, events: cur}
			s.next++
		}
		if commit {
			s.commits = append(s.commits, pgCommitMark{seq: s.next, end: end})
			s.advance()
		}
		s.mu.Unlock()
		if commit {
			s.queuedTx, s.partialTx, s.partialEvents = txLSN, 0, 0
		} else if b.events != nil {
			s.partialTx, s.partialEvents = txLSN, txIndex
		}
		cur = nil
		if b.events == nil {
			return nil
		}
		select {
		case queue <- b:
			return nil
		case <-stopped:
			return errPGEmitStopped
		case <-ctx.Done():
			return nil
		}
	}
	for ctx.Err() == nil {
		raw, err := s.conn.ReceiveMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return &pgLostError{fmt.Errorf("source %q: replication stream: %w", s.name, err)}
		}
		var data []byte
		switch m := raw.(type) {
		case *pgproto3.CopyData:
			data = m.Data
		case *pgproto3.ErrorResponse:
			err := fmt.Errorf("source %q: replication stream: %w", s.name, pgconn.ErrorResponseToPgError(m))
			if pgConnectionLost(&pgLostError{err}) {
				return &pgLostError{err} // e.g. the server shuts down
			}
			return err
		default:
			continue
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return fmt.Errorf("source %q: keepalive: %w", s.name, err)
			}
			if ka.ReplyRequested {
				select {
				case s.statusReq <- struct{}{}:
				default: // one is already asked for
				}
			}
			continue
		case pglogrepl.XLogDataByteID:
		default:
			continue
		}
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("source %q: WAL data: %w", s.name, err)
		}
		if end := uint64(xld.WALStart) + uint64(len(xld.WALData)); end > s.received.Load() {
			s.received.Store(end)
		}
		msg, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return fmt.Errorf("source %q: decode pgoutput message: %w", s.name, err)
		}
		switch m := msg.(type) {
		case *pglogrepl.RelationMessage:
			r := &pgRel{schema: m.Namespace, table: m.RelationName}
			for _, c := range m.Columns {
				r.cols = append(r.cols, pgCol{name: c.Name, oid: c.DataType, key: c.Flags&1 != 0})
			}
			s.rels[m.RelationID] = r
		case *pglogrepl.BeginMessage:
			txLSN, txTime, txIndex = m.FinalLSN, m.CommitTime, 0
			// Sent again after a reconnection: a transaction queued whole
			// is dropped, one queued in part loses what was queued.
			skipTx, skipN = txLSN <= s.queuedTx, 0
			if txLSN == s.partialTx {
				skipN = s.partialEvents
			}
			if skipTx || skipN > 0 {
				s.log.Debug("transaction sent again: dropping what was queued", "lsn", txLSN.String(), "whole", skipTx, "events", skipN)
			}
		case *pglogrepl.CommitMessage:
			if skipTx {
				skipTx = false
				continue
			}
			if err := flush(true, m.TransactionEndLSN); err != nil {
				return err
			}
		}
		if skipTx {
			continue
		}
		if skipN > 0 {
			switch msg.(type) {
			case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage:
				skipN--
				txIndex++
				continue
			case *pglogrepl.TruncateMessage:
				n := len(msg.(*pglogrepl.TruncateMessage).RelationIDs)
				if n <= skipN {
					skipN -= n
					txIndex += n
					continue
				}
				// Not seen: a truncate's relations are queued together.
			}
		}
		switch m := msg.(type) {
		case *pglogrepl.InsertMessage:
			cur = append(cur, s.change(m.RelationID, "insert", m.Tuple, nil, txLSN, txTime, &txIndex))
		case *pglogrepl.UpdateMessage:
			cur = append(cur, s.change(m.RelationID, "update", m.NewTuple, m.OldTuple, txLSN, txTime, &txIndex))
		case *pglogrepl.DeleteMessage:
			cur = append(cur, s.change(m.RelationID, "delete", m.OldTuple, nil, txLSN, txTime, &txIndex))
		case *pglogrepl.TruncateMessage:
			for _, id := range m.RelationIDs {
				cur = append(cur, s.truncate(id, m.Option, txLSN, txTime, &txIndex))
			}
		}
		if len(cur) >= s.batch {
			if err := flush(false, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// change builds the event of an insert, update or delete.
func (s *pgCDCSource) change(rel uint32, op string, tuple, old *pglogrepl.TupleData, lsn pglogrepl.LSN, t time.Time, idx *int) *flow.Event {
	r := s.rels[rel]
	if r == nil {
		r = &pgRel{table: strconv.FormatUint(uint64(rel), 10)}
	}
	ev := s.event(r, op, lsn, t, idx)
	ev.Data = pgTupleJSON(r, tuple, op == "delete")
	if old != nil {
		ev.Metadata["pg_old"] = string(pgTupleJSON(r, old, true))
	}
	return ev
}

func (s *pgCDCSource) truncate(rel uint32, opt uint8, lsn pglogrepl.LSN, t time.Time, idx *int) *flow.Event {
	r := s.rels[rel]
	if r == nil {
		r = &pgRel{table: strconv.FormatUint(uint64(rel), 10)}
	}
	ev := s.event(r, "truncate", lsn, t, idx)
	ev.Data, _ = json.Marshal(map[string]any{"schema": r.schema, "table": r.table, "cascade": opt&1 != 0, "restart_identity": opt&2 != 0})
	return ev
}

func (s *pgCDCSource) event(r *pgRel, op string, lsn pglogrepl.LSN, t time.Time, idx *int) *flow.Event {
	ev := &flow.Event{
		ID:              lsn.String() + "/" + strconv.Itoa(*idx),
		Source:          s.name,
		Type:            s.eventType + "." + op,
		Subject:         r.schema + "." + r.table,
		DataContentType: "application/json",
		Time:            t,
		Metadata: map[string]string{
			"pg_schema": r.schema, "pg_table": r.table, "pg_lsn": lsn.String(),
			"pg_commit_time": t.UTC().Format(time.RFC3339Nano), "pg_op": op,
		},
	}
	*idx++
	return ev
}

// pgTupleJSON writes a tuple as a JSON object in the relation's column
// order. keyOnly leaves out the columns the tuple does not carry (a
// delete's or an old tuple's non-key columns arrive as NULL markers when
// the replica identity is the key). Unchanged TOASTed values (not sent by
// the server) are left out.
func pgTupleJSON(r *pgRel, t *pglogrepl.TupleData, keyOnly bool) []byte {
	b := []byte{'{'}
	if t == nil {
		return append(b, '}')
	}
	first := true
	for i, c := range t.Columns {
		if i >= len(r.cols) {
			break
		}
		col := r.cols[i]
		if c.DataType == 'u' || (keyOnly && c.DataType == 'n' && !col.key) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = flow.AppendJSONString(b, col.name)
		b = append(b, ':')
		switch c.DataType {
		case 'n':
			b = append(b, "null"...)
		case 't':
			b = pgAppendValue(b, col.oid, c.Data)
		default: // 'b' binary: not asked for (protocol 1 sends text)
			b = flow.AppendJSONString(b, base64.StdEncoding.EncodeToString(c.Data))
		}
	}
	return append(b, '}')
}

// Type OIDs of the built-in types given a JSON form of their own.
const (
	pgOIDBool        = 16
	pgOIDBytea       = 17
	pgOIDInt8        = 20
	pgOIDInt2        = 21
	pgOIDInt4        = 23
	pgOIDOID         = 26
	pgOIDJSON        = 114
	pgOIDFloat4      = 700
	pgOIDFloat8      = 701
	pgOIDTimestamp   = 1114
	pgOIDTimestamptz = 1184
	pgOIDNumeric     = 1700
	pgOIDJSONB       = 3802
)

// pgAppendValue appends a column's text value as JSON: integers, floats
// and numeric as numbers (numeric with every digit; NaN and infinities as
// strings), bool as a boolean, json and jsonb nested, timestamps in
// RFC 3339 (with time zone: UTC), bytea in base64, anything else as the
// string PostgreSQL writes.
func pgAppendValue(b []byte, oid uint32, v []byte) []byte {
	s := string(v)
	switch oid {
	case pgOIDInt2, pgOIDInt4, pgOIDInt8, pgOIDOID:
		return append(b, v...)
	case pgOIDFloat4, pgOIDFloat8, pgOIDNumeric:
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && json.Valid(v) {
			return append(b, v...)
		}
	case pgOIDBool:
		if s == "t" {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case pgOIDJSON, pgOIDJSONB:
		if json.Valid(v) {
			return append(b, v...)
		}
	case pgOIDBytea:
		if raw, err := hex.DecodeString(strings.TrimPrefix(s, `\x`)); err == nil {
			return flow.AppendJSONString(b, base64.StdEncoding.EncodeToString(raw))
		}
	case pgOIDTimestamptz:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				return flow.AppendJSONString(b, t.UTC().Format(time.RFC3339Nano))
			}
		}
	case pgOIDTimestamp:
		if t, err := time.Parse("2006-01-02 15:04:05.999999999", s); err == nil {
			return flow.AppendJSONString(b, t.Format("2006-01-02T15:04:05.999999999"))
		}
	}
	return flow.AppendJSONString(b, s)
}

// Close closes the replication connection; the slot keeps the confirmed
// position for the next run.
func (s *pgCDCSource) Close(ctx context.Context) error {
	if s.conn == nil {
		return nil
	}
	// A last status update: what was written since the last one need not
	// come again.
	f := s.confirmed()
	if f != 0 {
		_ = pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: f, WALFlushPosition: f, WALApplyPosition: f, ClientTime: time.Now()})
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	return err
}

var (
	_ flow.Source = (*pgCDCSource)(nil)
	_ flow.Opener = (*pgCDCSource)(nil)
	_ flow.Closer = (*pgCDCSource)(nil)
)
