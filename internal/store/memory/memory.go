package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/internal/rules"
)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	mu        sync.Mutex
	closed    bool
	pipelines map[string]store.Pipeline
	// tombstones remembers the revision deleted pipelines reached.
	tombstones map[string]int64
	regs       map[string]store.Registration
	// runs holds each pipeline's runs in ascending ID order; pruning
	// leaves gaps. seq is the last ID each pipeline's sequence gave out.
	runs map[string][]store.Run
	seq  map[string]int64
}

// New returns an empty, open store.
func New() *Store {
	return &Store{
		now:        time.Now,
		pipelines:  map[string]store.Pipeline{},
		tombstones: map[string]int64{},
		regs:       map[string]store.Registration{},
		runs:       map[string][]store.Run{},
		seq:        map[string]int64{},
	}
}

// lock takes the lock unless ctx is done or the store is closed; the
// caller unlocks only when it returns nil.
func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// PutPipeline implements store.Store.
func (s *Store) PutPipeline(ctx context.Context, p store.Pipeline, expected int64) (store.PutResult, error) {
	if err := s.lock(ctx); err != nil {
		return store.PutResult{}, err
	}
	defer s.mu.Unlock()
	var cur *store.Pipeline
	if c, ok := s.pipelines[p.Name]; ok {
		cur = &c
	}
	next, res, err := rules.Put(cur, s.tombstones[p.Name], p, expected, s.now())
	if err != nil || !res.Changed {
		return res, err
	}
	s.pipelines[p.Name] = next
	delete(s.tombstones, p.Name)
	return res, nil
}

// NextRevision implements store.Store.
func (s *Store) NextRevision(ctx context.Context, name string) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	var cur *store.Pipeline
	if c, ok := s.pipelines[name]; ok {
		cur = &c
	}
	return rules.NextRevision(cur, s.tombstones[name]), nil
}

// GetPipeline implements store.Store.
func (s *Store) GetPipeline(ctx context.Context, name string) (store.Pipeline, error) {
	if err := s.lock(ctx); err != nil {
		return store.Pipeline{}, err
	}
	defer s.mu.Unlock()
	p, ok := s.pipelines[name]
	if !ok {
		return store.Pipeline{}, fmt.Errorf("pipeline %q: %w", name, store.ErrNotFound)
	}
	return p.Clone(), nil
}

// ListPipelines implements store.Store.
func (s *Store) ListPipelines(ctx context.Context) ([]store.Pipeline, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make([]store.Pipeline, 0, len(s.pipelines))
	for _, p := range s.pipelines {
		out = append(out, p.Clone())
	}
	slices.SortFunc(out, func(a, b store.Pipeline) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeletePipeline implements store.Store.
func (s *Store) DeletePipeline(ctx context.Context, name string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	p, ok := s.pipelines[name]
	if !ok {
		return fmt.Errorf("delete pipeline %q: %w", name, store.ErrNotFound)
	}
	delete(s.pipelines, name)
	s.tombstones[name] = p.Revision
	return nil
}

// UpdatePipelineStatus implements store.Store.
func (s *Store) UpdatePipelineStatus(ctx context.Context, name string, status store.PipelineStatus) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	p, ok := s.pipelines[name]
	if !ok {
		return fmt.Errorf("update status of pipeline %q: %w", name, store.ErrNotFound)
	}
	p.Status = status.Clone()
	s.pipelines[name] = p
	return nil
}

// PutRegistration implements store.Store.
func (s *Store) PutRegistration(ctx context.Context, reg store.Registration) error {
	if reg.ID == "" {
		return fmt.Errorf("put registration: empty id")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	reg = reg.Clone()
	if reg.RegisteredAt.IsZero() {
		reg.RegisteredAt = store.NormTime(s.now())
	}
	s.regs[reg.ID] = reg
	return nil
}

// DeleteRegistration implements store.Store.
func (s *Store) DeleteRegistration(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.regs[id]; !ok {
		return fmt.Errorf("delete registration %q: %w", id, store.ErrNotFound)
	}
	delete(s.regs, id)
	return nil
}

// ListRegistrations implements store.Store.
func (s *Store) ListRegistrations(ctx context.Context, pipeline string) ([]store.Registration, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := []store.Registration{}
	for _, r := range s.regs {
		if pipeline == "" || r.Pipeline == pipeline {
			out = append(out, r.Clone())
		}
	}
	slices.SortFunc(out, func(a, b store.Registration) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// StartRun implements store.Store.
func (s *Store) StartRun(ctx context.Context, run store.Run, keep int) (store.Run, error) {
	if err := rules.CheckRun(run, true); err != nil {
		return store.Run{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.Run{}, err
	}
	defer s.mu.Unlock()
	s.seq[run.Pipeline]++
	r := rules.NewRun(run, s.seq[run.Pipeline], s.now())
	runs := append(s.runs[run.Pipeline], r)
	if keep > 0 && len(runs) > keep {
		old := len(runs) - keep
		runs = slices.Concat(slices.DeleteFunc(slices.Clone(runs[:old]), rules.Prunable), runs[old:])
	}
	s.runs[run.Pipeline] = runs
	return r.Clone(), nil
}

// findRun returns the index of run id in runs, or -1.
func findRun(runs []store.Run, id int64) int {
	i, ok := slices.BinarySearchFunc(runs, id, func(r store.Run, id int64) int { return cmp.Compare(r.ID, id) })
	if !ok {
		return -1
	}
	return i
}

// UpdateRun implements store.Store.
func (s *Store) UpdateRun(ctx context.Context, run store.Run) error {
	if err := rules.CheckRun(run, false); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	runs := s.runs[run.Pipeline]
	i := findRun(runs, run.ID)
	if i < 0 {
		return fmt.Errorf("update run %s/%d: %w", run.Pipeline, run.ID, store.ErrNotFound)
	}
	runs[i] = run.Clone()
	return nil
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, pipeline string, limit int) ([]store.Run, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := []store.Run{}
	if pipeline != "" {
		runs := s.runs[pipeline]
		for i := len(runs) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
			out = append(out, runs[i].Clone())
		}
		return out, nil
	}
	for _, runs := range s.runs {
		for _, r := range runs {
			out = append(out, r.Clone())
		}
	}
	rules.SortRuns(out)
	return rules.Limit(out, limit), nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.pipelines, s.tombstones, s.regs, s.runs, s.seq = nil, nil, nil, nil, nil
	return nil
}

var _ store.Store = (*Store)(nil)
