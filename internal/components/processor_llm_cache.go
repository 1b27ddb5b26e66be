package components

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/store/boltfile"
)

// llmCache keeps the llm processor's answers by request hash. put may
// hold answers back until flush writes them; get sees them at once. An
// answer older than the cache's ttl (when set) is not returned.
type llmCache interface {
	get(key string) (string, bool, error)
	put(key, content string) error
	flush() error
	close() error
}

// An answer is stored as llmEntryV1, the time it was received (Unix
// seconds, 8 bytes big-endian), then the answer. Files written before
// cache_ttl existed hold the bare answer: its age is unknown, so it counts
// as expired when a ttl is set.
const llmEntryV1 = 0x01

func llmEncodeEntry(at time.Time, content string) []byte {
	b := make([]byte, 9, 9+len(content))
	b[0] = llmEntryV1
	binary.BigEndian.PutUint64(b[1:], uint64(at.Unix()))
	return append(b, content...)
}

// llmDecodeEntry returns the answer and when it was received (zero when
// unknown).
func llmDecodeEntry(b []byte) (string, time.Time) {
	if len(b) >= 9 && b[0] == llmEntryV1 {
		return string(b[9:]), time.Unix(int64(binary.BigEndian.Uint64(b[1:9])), 0)
	}
	return string(b), time.Time{}
}

// llmExpiry says whether an answer received at is too old: ttl 0 keeps
// answers for ever.
type llmExpiry struct {
	ttl time.Duration
	now func() time.Time
}

func (e llmExpiry) expired(at time.Time) bool {
	return e.ttl > 0 && (at.IsZero() || e.now().Sub(at) > e.ttl)
}

// llmCacheBucket is the bucket of answers, also the file's marker.
var llmCacheBucket = []byte("llm_cache")

// llmCachePath is the cache file of component name in stateDir.
func llmCachePath(stateDir, name string) string {
	r := strings.NewReplacer("/", "_", `\`, "_", ":", "_")
	return filepath.Join(stateDir, "llm-cache."+r.Replace(name)+".db")
}

// llmBoltCache is the durable cache: a bbolt file. Answers are gathered
// and written llmCacheFlush at a time (and at every flush), one
// transaction and one fsync each, so that a batch of 256 events costs a
// few fsyncs, not 256.
type llmBoltCache struct {
	db *bbolt.DB
	llmExpiry

	mu      sync.Mutex
	pending map[string][]byte // encoded entries
}

// openLLMBoltCache opens (or creates) the cache file. With a ttl it first
// deletes the answers that are too old, so the file does not grow for
// ever; pruned says how many.
func openLLMBoltCache(path string, exp llmExpiry) (c *llmBoltCache, pruned int, err error) {
	db, err := boltfile.Open(path, boltfile.Options{Kind: "llm response cache", Marker: string(llmCacheBucket)})
	switch {
	case errors.Is(err, boltfile.ErrCorrupt), errors.Is(err, boltfile.ErrForeign):
		return nil, 0, fmt.Errorf("%w — move it aside (the cache then starts empty) or set config.cache: false", err)
	case err != nil:
		return nil, 0, err
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(llmCacheBucket)
		if err != nil || exp.ttl == 0 {
			return err
		}
		var old [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if _, at := llmDecodeEntry(v); exp.expired(at) {
				old = append(old, k)
			}
			return nil
		})
		for _, k := range old {
			if err == nil {
				err = b.Delete(k)
			}
		}
		pruned = len(old)
		return err
	}); err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return &llmBoltCache{db: db, llmExpiry: exp, pending: map[string][]byte{}}, pruned, nil
}

func (c *llmBoltCache) get(key string) (string, bool, error) {
	c.mu.Lock()
	e, ok := c.pending[key]
	c.mu.Unlock()
	if !ok {
		err := c.db.View(func(tx *bbolt.Tx) error {
			if b := tx.Bucket(llmCacheBucket).Get([]byte(key)); b != nil {
				e, ok = bytes.Clone(b), true
			}
			return nil
		})
		if err != nil || !ok {
			return "", false, err
		}
	}
	content, at := llmDecodeEntry(e)
	if c.expired(at) {
		return "", false, nil
	}
	return content, true, nil
}

func (c *llmBoltCache) put(key, content string) error {
	c.mu.Lock()
	c.pending[key] = llmEncodeEntry(c.now(), content)
	full := len(c.pending) >= llmCacheFlush
	c.mu.Unlock()
	if full {
		return c.flush()
	}
	return nil
}

func (c *llmBoltCache) flush() error {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return nil
	}
	batch := c.pending
	c.pending = map[string][]byte{}
	c.mu.Unlock()
	err := c.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(llmCacheBucket)
		for k, v := range batch {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Keep them for the next flush; get still sees them.
		c.mu.Lock()
		for k, v := range batch {
			if _, newer := c.pending[k]; !newer {
				c.pending[k] = v
			}
		}
		c.mu.Unlock()
		return fmt.Errorf("write the llm response cache %s: %w", c.db.Path(), err)
	}
	return nil
}

func (c *llmBoltCache) close() error {
	return errors.Join(c.flush(), c.db.Close())
}

// llmMemCache is the cache of a run without a state directory.
type llmMemCache struct {
	llmExpiry
	mu sync.Mutex
	m  map[string]llmMemEntry
}

type llmMemEntry struct {
	content string
	at      time.Time
}

func (c *llmMemCache) get(key string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || c.expired(e.at) {
		return "", false, nil
	}
	return e.content, true, nil
}

func (c *llmMemCache) put(key, content string) error {
	c.mu.Lock()
	c.m[key] = llmMemEntry{content, c.now()}
	c.mu.Unlock()
	return nil
}

func (c *llmMemCache) flush() error { return nil }
func (c *llmMemCache) close() error { return nil }
