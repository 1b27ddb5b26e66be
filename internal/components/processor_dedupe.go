package components

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

// dedupeDefaultWindow is how many keys dedupe remembers by default.
const dedupeDefaultWindow = 10000

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleProcessor,
		Name:    "dedupe",
		Summary: "Drops events whose key was already seen among the last N distinct keys.",
		Fields: []flow.Field{
			{
				Name:        "key",
				Type:        flow.TypeCEL,
				Required:    true,
				Description: "CEL expression giving the identity of an event (any type; compared by value and type, so 7 and \"7\" differ).",
				Example:     "data.id",
			},
			{
				Name:        "window",
				Type:        flow.TypeInt,
				Default:     dedupeDefaultWindow,
				Description: "How many distinct keys are remembered; the oldest is forgotten first. Memory stays bounded.",
			},
		},
		Examples: []string{
			`key: "data.id"`,
			"key: \"[data.account, data.ts]\"\nwindow: 100000",
		},
		Validate: validateWith(parseDedupe),
		New: func(bc flow.BuildContext) (any, error) {
			return parseDedupe(bc.Config)
		},
	})
}

// dedupeProcessor passes the first event of each key and drops repeats
// while the key is remembered. Keys are kept in a ring: when it is full
// the oldest key is forgotten (FIFO), so memory is bounded by window.
type dedupeProcessor struct {
	key *expr.Program

	mu     sync.Mutex
	seen   map[string]struct{}
	ring   []string // the remembered keys, oldest at next once full
	next   int
	window int
}

func parseDedupe(cfg flow.Config) (*dedupeProcessor, error) {
	var errs []error
	d := &dedupeProcessor{}
	src, ok, err := cfgString(cfg, "key")
	switch {
	case err != nil:
		errs = append(errs, err)
	case !ok:
		errs = append(errs, fieldErr("key", "is required", `say what identifies an event, for example key: "data.id"`))
	default:
		if d.key, err = compileField("key", src, expr.Any); err != nil {
			errs = append(errs, err)
		}
	}
	window, err := cfgInt(cfg, "window", dedupeDefaultWindow)
	switch {
	case err != nil:
		errs = append(errs, err)
	case window < 1:
		errs = append(errs, fieldErr("window", fmt.Sprintf("must be at least 1, got %d", window), fmt.Sprintf("the number of keys to remember, for example %d", dedupeDefaultWindow)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	d.seen = make(map[string]struct{}, min(window, 1<<16))
	d.ring = make([]string, 0, min(window, 1<<16)) // grows up to window
	d.window = window
	return d, nil
}

// Process appends in unless its key is remembered. The key is evaluated
// outside the lock; only the lookup and the insert are serialised, so
// parallel workers contend briefly. With parallelism > 1, which of two
// simultaneous duplicates passes is not defined. An error in the key
// expression fails the event.
func (d *dedupeProcessor) Process(_ context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	v, err := d.key.Eval(in)
	if err != nil {
		return out, err
	}
	kb, err := expr.JSON(v)
	if err != nil {
		return out, fmt.Errorf("key: %w", err)
	}
	key := string(kb)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.seen[key]; dup {
		return out, nil
	}
	d.seen[key] = struct{}{}
	if len(d.ring) < d.window {
		d.ring = append(d.ring, key)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = key
		d.next = (d.next + 1) % len(d.ring)
	}
	return append(out, in), nil
}

var _ flow.Processor = (*dedupeProcessor)(nil)
