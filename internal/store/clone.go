package store

import (
	"maps"
	"slices"
	"time"
)

// Clone returns a deep copy of p with its timestamps normalised (UTC, no
// monotonic reading), as every backend returns them.
func (p Pipeline) Clone() Pipeline {
	p.Spec = slices.Clone(p.Spec)
	p.AppliedAt = NormTime(p.AppliedAt)
	p.CreatedAt = NormTime(p.CreatedAt)
	p.Status = p.Status.Clone()
	return p
}

// Clone returns a deep copy of s with its timestamps normalised.
func (s PipelineStatus) Clone() PipelineStatus {
	if s.Conditions != nil {
		cs := make([]Condition, len(s.Conditions))
		for i, c := range s.Conditions {
			c.LastTransition = NormTime(c.LastTransition)
			cs[i] = c
		}
		s.Conditions = cs
	}
	return s
}

// Clone returns a deep copy of r with its timestamps normalised.
func (r Registration) Clone() Registration {
	r.InputTypes = slices.Clone(r.InputTypes)
	r.OutputTypes = slices.Clone(r.OutputTypes)
	r.Metadata = maps.Clone(r.Metadata)
	r.RegisteredAt = NormTime(r.RegisteredAt)
	return r
}

// Clone returns a deep copy of r with its timestamps normalised.
func (r Run) Clone() Run {
	r.Counters = maps.Clone(r.Counters)
	r.StartedAt = NormTime(r.StartedAt)
	r.EndedAt = NormTime(r.EndedAt)
	return r
}

// NormTime returns t in UTC without its monotonic clock reading: the form
// a time has after a round trip through storage, so that times compare
// equal with == whichever backend returned them.
func NormTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}
