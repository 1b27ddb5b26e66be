package components

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	bbolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/store/boltfile"
)

// llmCache keeps the llm processor's answers by request hash. put may
// hold answers back until flush writes them; get sees them at once.
type llmCache interface {
	get(key string) (string, bool, error)
	put(key, content string) error
	flush() error
	close() error
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

	mu      sync.Mutex
	pending map[string]string
}

func openLLMBoltCache(path string) (*llmBoltCache, error) {
	db, err := boltfile.Open(path, boltfile.Options{Kind: "llm response cache", Marker: string(llmCacheBucket)})
	switch {
	case errors.Is(err, boltfile.ErrCorrupt), errors.Is(err, boltfile.ErrForeign):
		return nil, fmt.Errorf("%w — move it aside (the cache then starts empty) or set config.cache: false", err)
	case err != nil:
		return nil, err
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(llmCacheBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &llmBoltCache{db: db, pending: map[string]string{}}, nil
}

func (c *llmBoltCache) get(key string) (string, bool, error) {
	c.mu.Lock()
	v, ok := c.pending[key]
	c.mu.Unlock()
	if ok {
		return v, true, nil
	}
	err := c.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(llmCacheBucket).Get([]byte(key)); b != nil {
			v, ok = string(b), true
		}
		return nil
	})
	return v, ok, err
}

func (c *llmBoltCache) put(key, content string) error {
	c.mu.Lock()
	c.pending[key] = content
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
	c.pending = map[string]string{}
	c.mu.Unlock()
	err := c.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(llmCacheBucket)
		for k, v := range batch {
			if err := b.Put([]byte(k), []byte(v)); err != nil {
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
	mu sync.Mutex
	m  map[string]string
}

func (c *llmMemCache) get(key string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok, nil
}

func (c *llmMemCache) put(key, content string) error {
	c.mu.Lock()
	c.m[key] = content
	c.mu.Unlock()
	return nil
}

func (c *llmMemCache) flush() error { return nil }
func (c *llmMemCache) close() error { return nil }
