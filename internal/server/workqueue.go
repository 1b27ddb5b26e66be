package server

import (
	"sync"
	"time"

	"github.com/flowctl/flowctl/pkg/backoff"
)

// workQueue is a queue of pipeline names to reconcile, in the manner of
// client-go's workqueue: a name is queued at most once however often it is
// added, and a name being processed is not handed to a second worker; an
// add while it is processed queues it again when Done is called.
type workQueue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	queue      []string
	dirty      map[string]bool
	processing map[string]bool
	failures   map[string]int
	shut       bool

	// base and max bound the per-name backoff of AddRateLimited.
	base, max time.Duration
}

func newWorkQueue(base, max time.Duration) *workQueue {
	q := &workQueue{dirty: map[string]bool{}, processing: map[string]bool{}, failures: map[string]int{}, base: base, max: max}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues name.
func (q *workQueue) Add(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shut || q.dirty[name] {
		return
	}
	q.dirty[name] = true
	if q.processing[name] {
		return
	}
	q.queue = append(q.queue, name)
	q.cond.Signal()
}

// AddAfter queues name after d.
func (q *workQueue) AddAfter(name string, d time.Duration) {
	if d <= 0 {
		q.Add(name)
		return
	}
	time.AfterFunc(d, func() { q.Add(name) })
}

// AddRateLimited queues name after a backoff that doubles with each call
// since the last Forget, at most max, with jitter; it returns the delay.
func (q *workQueue) AddRateLimited(name string) time.Duration {
	q.mu.Lock()
	n := q.failures[name]
	q.failures[name] = n + 1
	q.mu.Unlock()
	d := backoff.Policy{Base: q.base, Max: q.max, Jitter: backoff.DefaultJitter}.Delay(n + 1)
	q.AddAfter(name, d)
	return d
}

// Forget resets name's backoff.
func (q *workQueue) Forget(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, name)
}

// Get blocks until a name is queued (ok) or the queue is shut down.
func (q *workQueue) Get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shut {
		q.cond.Wait()
	}
	if q.shut {
		return "", false
	}
	name := q.queue[0]
	q.queue = q.queue[1:]
	q.processing[name] = true
	delete(q.dirty, name)
	return name, true
}

// Done marks name processed, queueing it again if it was added meanwhile.
func (q *workQueue) Done(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, name)
	if q.dirty[name] && !q.shut {
		q.queue = append(q.queue, name)
		q.cond.Signal()
	}
}

// ShutDown makes Get return false to every worker.
func (q *workQueue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shut = true
	q.cond.Broadcast()
}
