package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/store"
)

// Put decides a PutPipeline call. cur is the live stored record (nil when
// there is none); tombstone is the revision a deleted pipeline of the same
// name reached (0 when none). It returns the record to store and the
// result; when res.Changed is false nothing must be written.
func Put(cur *store.Pipeline, tombstone int64, p store.Pipeline, expected int64, now time.Time) (next store.Pipeline, res store.PutResult, err error) {
	if p.Name == "" {
		return store.Pipeline{}, res, fmt.Errorf("put pipeline: empty name")
	}
	if p.Hash == "" {
		return store.Pipeline{}, res, fmt.Errorf("put pipeline %q: empty hash", p.Name)
	}
	if expected < store.AnyRevision {
		return store.Pipeline{}, res, fmt.Errorf("put pipeline %q: invalid expected revision %d", p.Name, expected)
	}
	var curRev int64
	if cur != nil {
		curRev = cur.Revision
	}
	if expected != store.AnyRevision && expected != curRev {
		if cur == nil {
			return store.Pipeline{}, res, fmt.Errorf("put pipeline %q: expected revision %d, but it does not exist: %w", p.Name, expected, store.ErrConflict)
		}
		return store.Pipeline{}, res, fmt.Errorf("put pipeline %q: expected revision %d, stored is %d: %w", p.Name, expected, curRev, store.ErrConflict)
	}
	if cur != nil && cur.Hash == p.Hash {
		return *cur, store.PutResult{Pipeline: cur.Clone()}, nil
	}
	next = p.Clone()
	if next.AppliedAt.IsZero() {
		next.AppliedAt = store.NormTime(now)
	}
	next.Revision = NextRevision(cur, tombstone)
	if cur != nil {
		next.CreatedAt = cur.CreatedAt
		next.Status = cur.Status.Clone()
	} else {
		next.CreatedAt = next.AppliedAt
		next.Status = store.PipelineStatus{Phase: store.PhasePending}
	}
	return next, store.PutResult{Pipeline: next.Clone(), Created: cur == nil, Changed: true}, nil
}

// NextRevision is the revision a changing Put stores, given the same cur
// and tombstone as Put.
func NextRevision(cur *store.Pipeline, tombstone int64) int64 {
	if cur != nil {
		return cur.Revision + 1
	}
	return tombstone + 1
}

// CheckRun validates a run passed to StartRun (start true) or UpdateRun.
func CheckRun(r store.Run, start bool) error {
	if r.Pipeline == "" {
		return fmt.Errorf("run: empty pipeline name")
	}
	if !start && r.ID <= 0 {
		return fmt.Errorf("update run of %q: invalid id %d", r.Pipeline, r.ID)
	}
	return nil
}

// NewRun fills in the defaults StartRun applies.
func NewRun(r store.Run, id int64, now time.Time) store.Run {
	r = r.Clone()
	r.ID = id
	if r.State == "" {
		r.State = store.RunStarted
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = store.NormTime(now)
	}
	return r
}

// Prunable reports whether a run that is not among its pipeline's newest
// keep may be removed: only one that has ended.
func Prunable(r store.Run) bool { return r.State.Terminal() }

// SortRuns orders runs newest first: StartedAt, then pipeline name, then
// ID, all descending.
func SortRuns(runs []store.Run) {
	slices.SortFunc(runs, func(a, b store.Run) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		if c := strings.Compare(b.Pipeline, a.Pipeline); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}

// Limit cuts runs to limit when limit > 0.
func Limit[T any](xs []T, limit int) []T {
	if limit > 0 && len(xs) > limit {
		return xs[:limit]
	}
	return xs
}
