package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/store/boltfile"
)

// FileName is the name of a pipeline's state file inside its directory.
const FileName = "state.db"

// SchemaVersion is the layout of the state file this flowctl writes.
const SchemaVersion = 1

// Buckets of the state file.
var (
	bucketMeta    = []byte("meta")    // schema, pipeline
	bucketSources = []byte("sources") // one nested bucket per source: key → position
	bucketSinks   = []byte("sinks")   // sink name → JSON flow.SinkCheckpoint
	keySchema     = []byte("schema")
	keyPipeline   = []byte("pipeline")
	keyUpdated    = []byte("updated")
)

// ErrInUse means another process holds the state file: the pipeline runs
// already.
var ErrInUse = errors.New("state is in use")

// ErrCorrupt means the state file is not one flowctl can read.
var ErrCorrupt = errors.New("state file is unreadable")

// Store is one pipeline's checkpoint store. It implements
// flow.CheckpointStore.
type Store struct {
	path string
	db   *bbolt.DB
}

// Dir returns the directory of pipeline's state under root.
func Dir(root, pipeline string) string {
	return filepath.Join(root, safeName(pipeline))
}

// safeName keeps a pipeline name usable as one path element.
func safeName(name string) string {
	r := strings.NewReplacer("/", "_", `\`, "_", ":", "_")
	name = r.Replace(name)
	if name == "" || name == "." || name == ".." {
		name = "_" + name
	}
	return name
}

// DefaultRoot is where `flowctl run` keeps checkpoints when --state-dir is
// not given: <user state dir>/flowctl/checkpoints.
func DefaultRoot() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "flowctl", "checkpoints"), nil
	}
	base, err := userStateBase()
	if err != nil {
		return "", fmt.Errorf("find the default state dir (set --state-dir or XDG_STATE_HOME): %w", err)
	}
	return filepath.Join(base, "flowctl", "checkpoints"), nil
}

// Open opens (creating it when missing) the state file of pipeline under
// root, locking it: a second process opening the same pipeline's state
// fails with ErrInUse after lockWait. A file that exists but is empty, not
// a bbolt file, damaged, or not a flowctl state file is refused with
// ErrCorrupt and never overwritten (internal/store/boltfile checks it).
func Open(root, pipeline string, lockWait time.Duration) (*Store, error) {
	dir := Dir(root, pipeline)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := boltfile.Open(path, boltfile.Options{Kind: "checkpoint store", Marker: string(bucketMeta), Timeout: max(lockWait, time.Millisecond)})
	switch {
	case errors.Is(err, boltfile.ErrLocked):
		return nil, fmt.Errorf("%w: %s is locked by another flowctl running this pipeline; stop it first", ErrInUse, path)
	case errors.Is(err, boltfile.ErrCorrupt), errors.Is(err, boltfile.ErrForeign):
		return nil, fmt.Errorf("%w: %w (the pipeline then starts over from the beginning)", ErrCorrupt, err)
	case err != nil:
		return nil, err
	}
	s := &Store{path: path, db: db}
	// A file already laid out is only read: a write transaction commits
	// (and syncs) even when it changes nothing, ~1 ms at every start.
	var ready bool
	_ = db.View(func(tx *bbolt.Tx) error { ready = laidOut(tx); return nil })
	if !ready {
		if err := db.Update(func(tx *bbolt.Tx) error { return prepare(tx, path, pipeline) }); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// laidOut reports whether prepare would find nothing to create or refuse.
func laidOut(tx *bbolt.Tx) bool {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return false
	}
	if v, err := strconv.Atoi(string(meta.Get(keySchema))); err != nil || v > SchemaVersion {
		return false
	}
	return tx.Bucket(bucketSources) != nil && tx.Bucket(bucketSinks) != nil
}

func corrupt(path, why string) error {
	return fmt.Errorf("%w: %s: %s — move it aside (the pipeline then starts over from the beginning) or restore it from a backup; flowctl does not overwrite it", ErrCorrupt, path, why)
}

// prepare creates the layout in a new file and checks an existing one.
func prepare(tx *bbolt.Tx, path, pipeline string) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bbolt.Bucket) error { empty = false; return nil })
		if !empty {
			return corrupt(path, "it is a bbolt file of something else (no flowctl state in it)")
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		if err := meta.Put(keyPipeline, []byte(pipeline)); err != nil {
			return err
		}
	}
	v, err := strconv.Atoi(string(meta.Get(keySchema)))
	if err != nil {
		return corrupt(path, "its schema version is missing")
	}
	if v > SchemaVersion {
		return fmt.Errorf("state file %s has schema v%d; this flowctl reads up to v%d: upgrade flowctl", path, v, SchemaVersion)
	}
	for _, b := range [][]byte{bucketSources, bucketSinks} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// posKey is how a position's key is stored: bbolt wants keys of at least
// one byte, and a source with one position has the key "".
func posKey(k string) []byte { return append([]byte{'='}, k...) }

// Path returns the state file's path.
func (s *Store) Path() string { return s.path }

// Close closes the file, releasing its lock.
func (s *Store) Close() error { return s.db.Close() }

// Load implements flow.CheckpointStore.
func (s *Store) Load() (flow.Checkpoint, error) {
	c := flow.Checkpoint{Sources: map[string]map[string][]byte{}, Sinks: map[string]flow.SinkCheckpoint{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketSources).ForEachBucket(func(name []byte) error {
			pos := map[string][]byte{}
			if err := tx.Bucket(bucketSources).Bucket(name).ForEach(func(k, v []byte) error {
				pos[string(k[1:])] = append([]byte(nil), v...)
				return nil
			}); err != nil {
				return err
			}
			c.Sources[string(name)] = pos
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketSinks).ForEach(func(k, v []byte) error {
			var sc flow.SinkCheckpoint
			if err := json.Unmarshal(v, &sc); err != nil {
				return fmt.Errorf("sink %q: %w", k, err)
			}
			c.Sinks[string(k)] = sc
			return nil
		})
	})
	if err != nil {
		return c, fmt.Errorf("read %s: %w", s.path, err)
	}
	return c, nil
}

// Commit implements flow.CheckpointStore: one transaction, fsynced.
func (s *Store) Commit(c flow.Checkpoint) error {
	if len(c.Sources) == 0 && len(c.Sinks) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		srcs := tx.Bucket(bucketSources)
		for name, pos := range c.Sources {
			b, err := srcs.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			for k, v := range pos {
				if err := b.Put(posKey(k), v); err != nil {
					return err
				}
			}
		}
		sinks := tx.Bucket(bucketSinks)
		for name, sc := range c.Sinks {
			v, err := json.Marshal(sc)
			if err != nil {
				return err
			}
			if err := sinks.Put([]byte(name), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyUpdated, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		return fmt.Errorf("commit checkpoint to %s: %w", s.path, err)
	}
	return nil
}

// Reset forgets every position: the next run starts from the beginning.
func (s *Store) Reset() error {
	// Nothing to forget (a new file, or one reset before): no write.
	var empty bool
	_ = s.db.View(func(tx *bbolt.Tx) error {
		empty = tx.Bucket(bucketMeta).Get(keyUpdated) == nil &&
			bucketEmpty(tx.Bucket(bucketSources)) && bucketEmpty(tx.Bucket(bucketSinks))
		return nil
	})
	if empty {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketSources, bucketSinks} {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyUpdated)
	})
}

// bucketEmpty reports whether b holds no key and no bucket.
func bucketEmpty(b *bbolt.Bucket) bool {
	k, _ := b.Cursor().First()
	return k == nil
}

// Updated returns when the last checkpoint was committed (zero: never).
func (s *Store) Updated() time.Time {
	var t time.Time
	_ = s.db.View(func(tx *bbolt.Tx) error {
		t, _ = time.Parse(time.RFC3339Nano, string(tx.Bucket(bucketMeta).Get(keyUpdated)))
		return nil
	})
	return t
}

// List returns the pipelines that have state under root, sorted.
func List(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, e.Name(), FileName)); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

var _ flow.CheckpointStore = (*Store)(nil)
