package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Health is what the engine knows of a component's health from its own
// work: a sink whose writes fail is retrying, not done for.
//
//	healthy ──write fails, retrying──► degraded ──waits reached max_backoff──► unhealthy
//	   ▲                                  │                                      │
//	   └──────────── a write succeeds ────┴──────────────────────────────────────┘
type Health string

// The health states.
const (
	HealthHealthy   Health = "healthy"
	HealthDegraded  Health = "degraded"
	HealthUnhealthy Health = "unhealthy"
)

// maxReason bounds the length of a health reason (an HTTP error may carry
// the start of a body).
const maxReason = 200

// healthState is a node's failure streak. failing is read on every batch;
// the rest only while it is set.
type healthState struct {
	failing  atomic.Bool
	mu       sync.Mutex
	since    time.Time
	attempts int
	capped   bool
	reason   string
}

// noteRetry records that a write failed and will be tried again, and
// publishes the batch's counts so far (t), so that a sink retrying for a
// long time shows its errors and retries while it does.
func (n *node) noteRetry(attempt int, err error, t *tally) {
	t.flush(n.stats)
	*t = tally{}
	h := &n.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing.Load() {
		h.since = time.Now()
		h.attempts = 0
	}
	h.attempts++
	h.capped = n.policy.backoff.Capped(attempt)
	h.reason = err.Error()
	if len(h.reason) > maxReason {
		h.reason = h.reason[:maxReason] + "…"
	}
	h.failing.Store(true)
}

// noteDone records that a batch is done with: written, or its failed
// events settled (settled of them: dead-lettered, dropped) once the
// retries ran out. The streak, if any, is over either way; the sink is
// not retrying any more.
func (n *node) noteDone(settled int) {
	if !n.health.failing.Load() {
		return
	}
	h := &n.health
	h.mu.Lock()
	if h.failing.Load() && settled == 0 {
		n.log.Info("write succeeded again", logKeyAttempt, h.attempts+1, logKeyFailingFor, time.Since(h.since).Round(time.Millisecond))
	}
	h.failing.Store(false)
	h.mu.Unlock()
}

// healthNow is the node's health and, unless healthy, why.
func (n *node) healthNow() (Health, string) {
	h := &n.health
	if !h.failing.Load() {
		return HealthHealthy, ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing.Load() {
		return HealthHealthy, ""
	}
	state := HealthDegraded
	if h.capped {
		state = HealthUnhealthy
	}
	return state, fmt.Sprintf("retrying for %s (%d failed attempts): %s", time.Since(h.since).Round(time.Second), h.attempts, h.reason)
}
