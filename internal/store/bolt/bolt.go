package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/boltfile"
	"github.com/flowctl/flowctl/internal/store/internal/rules"
)

// FileName is the name of the data file inside a data dir.
const FileName = "flowctl.db"

// DefaultLockTimeout is how long Open waits for another process to let go
// of the data file.
const DefaultLockTimeout = time.Second

// Options tune Open. The zero value is fine.
type Options struct {
	// LockTimeout is how long to wait for the file lock held by another
	// process before failing with ErrInUse; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// Logger receives one line per migration; nil discards.
	Logger *slog.Logger
	// HashSpec computes a pipeline's content hash from its spec. It is
	// used only when migrating a v1 file, whose records had no hash; pass
	// the server's own hash function so that re-applying an unchanged file
	// after the upgrade changes nothing. nil uses a plain sha256 of the
	// spec bytes (re-applying then bumps the revision once).
	HashSpec func(spec []byte) (string, error)
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// Store is a store.Store kept in one bbolt file. Create one with Open or
// OpenDir.
type Store struct {
	path    string
	pidPath string
	now     func() time.Time

	// mu is held for reading by every call for its whole transaction and
	// for writing by Close, so Close waits for calls in flight.
	mu     sync.RWMutex
	db     *bbolt.DB
	closed bool
}

// OpenDir creates dir (0700) if needed and opens FileName inside it.
func OpenDir(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return Open(filepath.Join(dir, FileName), opts)
}

// Open opens (creating if needed) the data file at path, takes its lock,
// refuses a damaged or foreign file with a *boltfile.Error (see
// boltfile.Open; the file is left as it was), and brings its schema up to
// date: a new file gets schema v2, a v1 file is
// migrated, a file of a newer schema is refused with store.ErrNewerSchema.
// When another process holds the file, Open fails after opts.LockTimeout
// with ErrInUse.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{path: path, pidPath: path + ".pid", now: opts.Now}
	db, err := boltfile.Open(path, boltfile.Options{
		Kind: "server store", Marker: string(bucketMeta), Timeout: opts.LockTimeout, Logger: opts.Logger,
	})
	if err != nil {
		if errors.Is(err, boltfile.ErrLocked) {
			return nil, s.inUseError()
		}
		// A *boltfile.Error names the file and what to do; return it as
		// it is, for the server to print.
		return nil, err
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return prepare(tx, path, opts) }); err != nil {
		_ = db.Close()
		return nil, err
	}
	// The pid file only improves the message a second server prints; the
	// lock itself is bbolt's flock on the data file.
	_ = os.WriteFile(s.pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	db.MaxBatchDelay = maxBatchDelay
	s.db = db
	return s, nil
}

// inUseError builds the error for a data file locked by another process.
func (s *Store) inUseError() error {
	dir := filepath.Dir(s.path)
	b, err := os.ReadFile(s.pidPath)
	pid := strings.TrimSpace(string(b))
	if err != nil || pid == "" {
		return fmt.Errorf("%w: %s is locked (pid unknown); stop that server or pass another --data-dir", ErrInUse, dir)
	}
	return fmt.Errorf("%w (pid %s): %s is locked; stop that server or pass another --data-dir", ErrInUse, pid, dir)
}

// prepare creates, checks or migrates the schema in one transaction.
func prepare(tx *bbolt.Tx, path string, opts Options) error {
	v, err := schemaVersion(tx)
	if err != nil {
		return fmt.Errorf("data file %s: %w", path, err)
	}
	switch {
	case v > SchemaVersion:
		return newerSchemaError("data file "+path, v)
	case v == 0:
		if empty(tx) {
			return create(tx)
		}
		return fmt.Errorf("data file %s has no schema version: not a flowctl data file", path)
	case v == 1:
		if err := migrateV1(tx, opts); err != nil {
			return fmt.Errorf("migrate data file %s from schema v1 to v%d: %w", path, SchemaVersion, err)
		}
		opts.Logger.Info("migrated data file", "path", path, "from", 1, "to", SchemaVersion)
		return nil
	}
	return nil
}

// schemaVersion reads the file's schema version; 0 means none recorded.
func schemaVersion(tx *bbolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	raw := meta.Get(keySchemaVersion)
	if raw == nil {
		return 0, nil
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("bad schema version %q", raw)
	}
	return v, nil
}

func empty(tx *bbolt.Tx) bool {
	c := tx.Cursor()
	k, _ := c.First()
	return k == nil
}

// create lays out an empty v2 file.
func create(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketPipelines, bucketRegistrations, bucketRuns} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion)))
}

// Path returns the data file's path.
func (s *Store) Path() string { return s.path }

// view and update run fn in a read or write transaction unless ctx is done
// or the store is closed.
func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return s.tx(ctx, txView, fn)
}

func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return s.tx(ctx, txUpdate, fn)
}

// batch is update for the writes that arrive in storms — registrations,
// when a server restarts and every component registers again: concurrent
// calls share one transaction and one fsync (measured on the dev machine:
// 16 concurrent writers 0.1–0.2 ms per registration instead of 0.7–2.5 ms),
// at the price of up to maxBatchDelay for a lone writer. fn may run more
// than once, so it must depend on its arguments and tx only.
func (s *Store) batch(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return s.tx(ctx, txBatch, fn)
}

// maxBatchDelay bounds how long a batched write waits for company.
const maxBatchDelay = 2 * time.Millisecond

type txKind int

const (
	txView txKind = iota
	txUpdate
	txBatch
)

func (s *Store) tx(ctx context.Context, kind txKind, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	switch kind {
	case txUpdate:
		return s.db.Update(fn)
	case txBatch:
		return s.db.Batch(fn)
	}
	return s.db.View(fn)
}

// getPipeline reads the record called name, tombstones included; ok is
// false when there is none.
func getPipeline(tx *bbolt.Tx, name string) (p pipelineV2, ok bool, err error) {
	raw := tx.Bucket(bucketPipelines).Get([]byte(name))
	if raw == nil {
		return p, false, nil
	}
	if err := decode(fmt.Sprintf("pipeline %q", name), raw, &p); err != nil {
		return p, false, err
	}
	return p, true, nil
}

// current reads what the rules package decides on: the live pipeline
// called name (nil when there is none) and the revision a deleted one of
// that name reached (0 when none).
func current(tx *bbolt.Tx, name string) (cur *store.Pipeline, tombstone int64, err error) {
	rec, ok, err := getPipeline(tx, name)
	switch {
	case err != nil || !ok:
		return nil, 0, err
	case rec.Deleted:
		return nil, rec.Revision, nil
	}
	c := rec.toStore()
	return &c, 0, nil
}

func putPipeline(tx *bbolt.Tx, p pipelineV2) error {
	b, err := encode(p)
	if err != nil {
		return fmt.Errorf("encode pipeline %q: %w", p.Name, err)
	}
	return tx.Bucket(bucketPipelines).Put([]byte(p.Name), b)
}

// PutPipeline implements store.Store.
func (s *Store) PutPipeline(ctx context.Context, p store.Pipeline, expected int64) (store.PutResult, error) {
	// Re-applying an unchanged file is the common case (every `apply` of
	// a checked-in directory); answer it from a read transaction, which
	// costs no fsync. A write transaction below decides everything else.
	var res store.PutResult
	var unchanged bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		rec, ok, err := getPipeline(tx, p.Name)
		if err != nil || !ok || rec.Deleted || rec.Hash != p.Hash || p.Hash == "" {
			return err
		}
		cur := rec.toStore()
		_, r, err := rules.Put(&cur, 0, p, expected, s.now())
		if err == nil && !r.Changed {
			res, unchanged = r, true
		}
		return nil
	})
	if err != nil {
		return store.PutResult{}, err
	}
	if unchanged {
		return res, nil
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		cur, tombstone, err := current(tx, p.Name)
		if err != nil {
			return err
		}
		next, r, err := rules.Put(cur, tombstone, p, expected, s.now())
		if err != nil || !r.Changed {
			res = r
			return err
		}
		if err := putPipeline(tx, pipelineToV2(next, false)); err != nil {
			return err
		}
		res = r
		return nil
	})
	if err != nil {
		return store.PutResult{}, err
	}
	return res, nil
}

// NextRevision implements store.Store.
func (s *Store) NextRevision(ctx context.Context, name string) (int64, error) {
	var next int64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		cur, tombstone, err := current(tx, name)
		if err != nil {
			return err
		}
		next = rules.NextRevision(cur, tombstone)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return next, nil
}

// GetPipeline implements store.Store.
func (s *Store) GetPipeline(ctx context.Context, name string) (store.Pipeline, error) {
	var out store.Pipeline
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		rec, ok, err := getPipeline(tx, name)
		if err != nil {
			return err
		}
		if !ok || rec.Deleted {
			return fmt.Errorf("pipeline %q: %w", name, store.ErrNotFound)
		}
		out = rec.toStore()
		return nil
	})
	return out, err
}

// ListPipelines implements store.Store.
func (s *Store) ListPipelines(ctx context.Context) ([]store.Pipeline, error) {
	out := []store.Pipeline{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPipelines).ForEach(func(k, v []byte) error {
			var rec pipelineV2
			if err := decode(fmt.Sprintf("pipeline %q", k), v, &rec); err != nil {
				return err
			}
			if !rec.Deleted {
				out = append(out, rec.toStore())
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil // bbolt iterates in key order: sorted by name
}

// DeletePipeline implements store.Store.
func (s *Store) DeletePipeline(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		rec, ok, err := getPipeline(tx, name)
		if err != nil {
			return err
		}
		if !ok || rec.Deleted {
			return fmt.Errorf("delete pipeline %q: %w", name, store.ErrNotFound)
		}
		// Keep only what a later apply needs: the revision reached.
		return putPipeline(tx, pipelineV2{Name: rec.Name, Revision: rec.Revision, Deleted: true})
	})
}

// UpdatePipelineStatus implements store.Store.
func (s *Store) UpdatePipelineStatus(ctx context.Context, name string, status store.PipelineStatus) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		rec, ok, err := getPipeline(tx, name)
		if err != nil {
			return err
		}
		if !ok || rec.Deleted {
			return fmt.Errorf("update status of pipeline %q: %w", name, store.ErrNotFound)
		}
		rec.Status = statusToV2(status.Clone())
		return putPipeline(tx, rec)
	})
}

// PutRegistration implements store.Store.
func (s *Store) PutRegistration(ctx context.Context, reg store.Registration) error {
	if reg.ID == "" {
		return fmt.Errorf("put registration: empty id")
	}
	reg = reg.Clone()
	if reg.RegisteredAt.IsZero() {
		reg.RegisteredAt = store.NormTime(s.now())
	}
	b, err := encode(registrationToV2(reg))
	if err != nil {
		return fmt.Errorf("encode registration %q: %w", reg.ID, err)
	}
	return s.batch(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRegistrations).Put([]byte(reg.ID), b)
	})
}

// DeleteRegistration implements store.Store.
func (s *Store) DeleteRegistration(ctx context.Context, id string) error {
	return s.batch(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRegistrations)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("delete registration %q: %w", id, store.ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}

// ListRegistrations implements store.Store.
func (s *Store) ListRegistrations(ctx context.Context, pipeline string) ([]store.Registration, error) {
	out := []store.Registration{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRegistrations).ForEach(func(k, v []byte) error {
			var rec registrationV2
			if err := decode(fmt.Sprintf("registration %q", k), v, &rec); err != nil {
				return err
			}
			if pipeline == "" || rec.Pipeline == pipeline {
				out = append(out, rec.toStore())
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// runKey is the key of run id inside its pipeline's bucket: big-endian, so
// that key order is id order.
func runKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(id))
}

// StartRun implements store.Store.
func (s *Store) StartRun(ctx context.Context, run store.Run, keep int) (store.Run, error) {
	if err := rules.CheckRun(run, true); err != nil {
		return store.Run{}, err
	}
	var out store.Run
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.Bucket(bucketRuns).CreateBucketIfNotExists([]byte(run.Pipeline))
		if err != nil {
			return fmt.Errorf("runs of %q: %w", run.Pipeline, err)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next run id of %q: %w", run.Pipeline, err)
		}
		r := rules.NewRun(run, int64(seq), s.now())
		v, err := encode(runToV2(r))
		if err != nil {
			return fmt.Errorf("encode run %s/%d: %w", r.Pipeline, r.ID, err)
		}
		if err := b.Put(runKey(r.ID), v); err != nil {
			return err
		}
		if err := pruneRuns(b, run.Pipeline, keep); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// pruneRuns removes the runs in b (one pipeline's) older than the newest
// keep that have ended; keep <= 0 removes none. The bucket's sequence is
// untouched, so ids are never reused.
func pruneRuns(b *bbolt.Bucket, pipeline string, keep int) error {
	if keep <= 0 {
		return nil
	}
	// Walk back over the newest keep; what lies before is prunable.
	c := b.Cursor()
	k, _ := c.Last()
	for i := 1; i < keep && k != nil; i++ {
		k, _ = c.Prev()
	}
	if k == nil {
		return nil
	}
	oldestKept := slices.Clone(k)
	var drop [][]byte
	for k, v := c.First(); k != nil && bytes.Compare(k, oldestKept) < 0; k, v = c.Next() {
		r, err := decodeRun(pipeline, k, v)
		if err != nil {
			return err
		}
		if rules.Prunable(r) {
			drop = append(drop, slices.Clone(k))
		}
	}
	// Deleted after the walk: a bbolt cursor skips keys when the bucket
	// changes under it.
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("prune run %s/%d: %w", pipeline, binary.BigEndian.Uint64(k), err)
		}
	}
	return nil
}

// UpdateRun implements store.Store.
func (s *Store) UpdateRun(ctx context.Context, run store.Run) error {
	if err := rules.CheckRun(run, false); err != nil {
		return err
	}
	v, err := encode(runToV2(run))
	if err != nil {
		return fmt.Errorf("encode run %s/%d: %w", run.Pipeline, run.ID, err)
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRuns).Bucket([]byte(run.Pipeline))
		if b == nil || b.Get(runKey(run.ID)) == nil {
			return fmt.Errorf("update run %s/%d: %w", run.Pipeline, run.ID, store.ErrNotFound)
		}
		return b.Put(runKey(run.ID), v)
	})
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, pipeline string, limit int) ([]store.Run, error) {
	out := []store.Run{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		if pipeline != "" {
			b := runs.Bucket([]byte(pipeline))
			if b == nil {
				return nil
			}
			c := b.Cursor()
			for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
				r, err := decodeRun(pipeline, k, v)
				if err != nil {
					return err
				}
				out = append(out, r)
			}
			return nil
		}
		return runs.ForEachBucket(func(name []byte) error {
			return runs.Bucket(name).ForEach(func(k, v []byte) error {
				r, err := decodeRun(string(name), k, v)
				if err != nil {
					return err
				}
				out = append(out, r)
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	if pipeline == "" {
		rules.SortRuns(out)
		out = rules.Limit(out, limit)
	}
	return out, nil
}

func decodeRun(pipeline string, k, v []byte) (store.Run, error) {
	var rec runV2
	what := fmt.Sprintf("run %s/%x", pipeline, k)
	if len(k) == 8 {
		what = fmt.Sprintf("run %s/%d", pipeline, binary.BigEndian.Uint64(k))
	}
	if err := decode(what, v, &rec); err != nil {
		return store.Run{}, err
	}
	return rec.toStore(), nil
}

// Close implements store.Store: it waits for calls in flight, closes the
// file (releasing its lock) and removes the pid file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	err := s.db.Close()
	// Remove the pid file only if it is still ours.
	if b, rerr := os.ReadFile(s.pidPath); rerr == nil && bytes.Equal(bytes.TrimSpace(b), []byte(strconv.Itoa(os.Getpid()))) {
		_ = os.Remove(s.pidPath)
	}
	if err != nil {
		return fmt.Errorf("close data file %s: %w", s.path, err)
	}
	return nil
}

var _ store.Store = (*Store)(nil)
