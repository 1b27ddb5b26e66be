package engine

import (
	"sync"
)

// queue is a node's bounded input queue: batches in, capacity counted in
// events. Several producers (fan-in, the nodes that dead-letter) and
// several consumers (parallel workers) may use it. A batch always fits in
// an empty queue, so a batch larger than the capacity cannot deadlock.
type queue struct {
	mu        sync.Mutex
	ring      []*batch
	head, n   int
	events    int
	capacity  int
	producers int
	// seq numbers batches in pop order, for ordered parallel workers.
	seq uint64

	// ready and space are one-slot wake-up signals. A woken waiter that
	// leaves work (items or room) behind passes the signal on, so one slot
	// is enough for any number of waiters.
	ready chan struct{}
	space chan struct{}
}

func newQueue(capacity, producers int) *queue {
	if capacity < 1 {
		capacity = 1
	}
	return &queue{
		ring:      make([]*batch, 8),
		capacity:  capacity,
		producers: producers,
		ready:     make(chan struct{}, 1),
		space:     make(chan struct{}, 1),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push appends b, blocking while the queue is full. It gives up when soft
// or hard is closed (either may be nil) and returns false; the caller still
// owns b then.
func (q *queue) push(b *batch, soft, hard <-chan struct{}) bool {
	size := len(b.events)
	q.mu.Lock()
	for q.events > 0 && q.events+size > q.capacity {
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-soft:
			return false
		case <-hard:
			return false
		}
		q.mu.Lock()
	}
	if q.n == len(q.ring) {
		grown := make([]*batch, 2*len(q.ring))
		for i := 0; i < q.n; i++ {
			grown[i] = q.ring[(q.head+i)%len(q.ring)]
		}
		q.ring, q.head = grown, 0
	}
	q.ring[(q.head+q.n)%len(q.ring)] = b
	q.n++
	q.events += size
	room := q.events < q.capacity
	q.mu.Unlock()
	signal(q.ready)
	if room {
		signal(q.space)
	}
	return true
}

// popResult says what pop returned.
type popResult int

const (
	popOK     popResult = iota // a batch
	popEnd                     // drained and no producer left, or stopped hard
	popPaused                  // pause closed while the queue was empty
)

// pop takes the oldest batch and its sequence number, blocking while the
// queue is empty and producers remain. It returns popEnd when the queue is
// drained and closed, or hard is closed, and popPaused when pause (which
// may be nil) is closed while it waits on an empty queue.
func (q *queue) pop(hard, pause <-chan struct{}) (b *batch, seq uint64, res popResult) {
	for {
		q.mu.Lock()
		if q.n > 0 {
			b = q.ring[q.head]
			q.ring[q.head] = nil
			q.head = (q.head + 1) % len(q.ring)
			q.n--
			q.events -= len(b.events)
			seq = q.seq
			q.seq++
			more := q.n > 0
			q.mu.Unlock()
			signal(q.space)
			if more {
				signal(q.ready)
			}
			return b, seq, popOK
		}
		if q.producers <= 0 {
			q.mu.Unlock()
			signal(q.ready) // wake the next worker so it sees the end too
			return nil, 0, popEnd
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-hard:
			return nil, 0, popEnd
		case <-pause:
			return nil, 0, popPaused
		}
	}
}

// producerDone tells the queue one producer will push no more.
func (q *queue) producerDone() {
	q.mu.Lock()
	q.producers--
	q.mu.Unlock()
	signal(q.ready)
}

// addProducer counts one more producer, unless the queue already saw its
// last producer finish (its consumers may be gone): then it returns false.
func (q *queue) addProducer() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.producers <= 0 {
		return false
	}
	q.producers++
	return true
}

// producerCount returns the number of producers still to finish.
func (q *queue) producerCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.producers
}

// closeInput makes the queue end once it is drained, whatever producers
// it still counts (Reload, once it held every one of them).
func (q *queue) closeInput() {
	q.mu.Lock()
	q.producers = 0
	q.mu.Unlock()
	signal(q.ready)
}

// depth returns the number of queued events.
func (q *queue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.events
}
