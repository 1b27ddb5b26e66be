package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// DefaultJitter is the jitter most callers want: each wait is drawn
// between half and all of its ceiling ("equal jitter"), so that many
// clients retrying against one endpoint spread out, and a wait is never
// shorter than half of what was configured.
const DefaultJitter = 0.5

// Policy describes a backoff: the ceiling of the n-th wait is Base doubled
// n-1 times, at most Max; the wait itself is drawn uniformly from
// [ceiling×(1−Jitter), ceiling]. A wait therefore never exceeds Max.
//
// A Policy is a value; it holds no state and is safe to share.
type Policy struct {
	// Base is the ceiling of the first wait; Max the largest ceiling (0:
	// no cap).
	Base, Max time.Duration
	// Jitter is the random part of each wait, a fraction in [0, 1]; 0
	// makes the waits exact.
	Jitter float64
}

// Ceiling is the largest wait after the n-th consecutive failure (n ≥ 1;
// a smaller n counts as 1): Base doubled n-1 times, at most Max.
func (p Policy) Ceiling(n int) time.Duration {
	d := max(p.Base, 0)
	for i := 1; i < n && d > 0 && (p.Max <= 0 || d < p.Max); i++ {
		if d > math.MaxInt64/2 {
			break // doubling again would overflow
		}
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	return d
}

// Capped reports whether the n-th wait has reached Max: the waits no
// longer grow, so the failure has lasted a while.
func (p Policy) Capped(n int) bool {
	return p.Max > 0 && p.Ceiling(n) >= p.Max
}

// Delay is the wait after the n-th consecutive failure, with jitter.
func (p Policy) Delay(n int) time.Duration {
	return p.jittered(p.Ceiling(n), rand.Float64)
}

func (p Policy) jittered(d time.Duration, random func() float64) time.Duration {
	j := min(max(p.Jitter, 0), 1)
	if j == 0 || d <= 0 {
		return d
	}
	return d - time.Duration(j*random()*float64(d))
}

// Backoff counts consecutive failures against a Policy. It is not safe for
// concurrent use; each retry loop has its own.
type Backoff struct {
	Policy
	n int
	// random returns a number in [0, 1); tests replace it.
	random func() float64
}

// New returns a Backoff at its start.
func New(p Policy) *Backoff { return &Backoff{Policy: p} }

// Next counts one more failure and returns the wait before trying again.
func (b *Backoff) Next() time.Duration {
	b.n++
	r := b.random
	if r == nil {
		r = rand.Float64
	}
	return b.jittered(b.Ceiling(b.n), r)
}

// Failures is the number of failures counted since the start or the last
// Reset.
func (b *Backoff) Failures() int { return b.n }

// Reset starts again from Base, after a success.
func (b *Backoff) Reset() { b.n = 0 }
