package components

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

// generateMaxBatch is the largest batch an Emitter accepts.
const generateMaxBatch = 256

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSource,
		Name:     "generate",
		Summary:  "Generates events numbered from 0 (id <name>:<i>): a fixed object, or one computed by CEL from the index i; deterministic.",
		Delivery: "Resumes at the first event not acknowledged, with the same ids and payloads.",
		Fields: []flow.Field{
			{Name: "count", Type: flow.TypeInt, Default: 0, Description: "How many events to generate; 0 means no end."},
			{Name: "rate", Type: flow.TypeNumber, Default: 0, Description: "Events per second; 0 means as fast as the pipeline takes them."},
			{Name: "batch_size", Type: flow.TypeInt, Default: generateMaxBatch, Description: "Largest batch handed to the pipeline, 1 to 256."},
			{Name: "event_type", Type: flow.TypeString, Description: "Type of the events. Default: the component's name."},
			{Name: "data", Type: flow.TypeObject, Description: "A fixed object emitted as the payload of every event. Not with expr.", Example: map[string]any{"kind": "ping"}},
			{
				Name: "expr", Type: flow.TypeCEL, CELResult: "map",
				Description: "CEL expression building each payload; the variable i is the event's index (an int from 0). Not with data.",
				Example:     `{"id": i, "amount": (i * 7919) % 10000}`,
			},
		},
		Examples: []string{
			"count: 1000\nexpr: '{\"id\": i, \"amount\": (i * 7919) % 10000}'",
			"rate: 10\ndata: {kind: ping}",
		},
		Validate:    validateWith(func(cfg flow.Config) (*generateSource, error) { return parseGenerate("", cfg) }),
		OutputTypes: sourceEventTypes,
		New: func(bc flow.BuildContext) (any, error) {
			return parseGenerate(bc.Name, bc.Config)
		},
	})
}

// generateSource emits events numbered from 0. Event i has id
// "<component>:<i>", source the component's name, and a payload that
// depends only on i and the config, so the same config gives the same
// events (only their time differs).
type generateSource struct {
	name      string
	eventType string
	count     int64   // 0: no end
	rate      float64 // events per second; 0: no pacing
	batch     int
	fixed     []byte        // data, encoded once and shared by every event
	build     *expr.Program // or expr, evaluated per event
	start     int64         // the first index: 0, or where a checkpoint left off
}

// generatePos is the generator's checkpoint: the index of the next event.
type generatePos struct {
	Next int64 `json:"next"`
}

// Resume implements flow.Resumer: the run goes on at the first event not
// acknowledged, with the same ids and payloads.
func (g *generateSource) Resume(positions map[string][]byte) error {
	v, ok := positions[""]
	if !ok {
		return nil
	}
	var p generatePos
	if err := json.Unmarshal(v, &p); err != nil || p.Next < 0 {
		return fmt.Errorf("generate %q: unreadable checkpoint %q", g.name, v)
	}
	g.start = p.Next
	return nil
}

// Bounded implements flow.Bounded: a generator with a count ends.
func (g *generateSource) Bounded() bool { return g.count > 0 }

func parseGenerate(name string, cfg flow.Config) (*generateSource, error) {
	var errs []error
	g := &generateSource{name: name}

	count, err := cfgInt(cfg, "count", 0)
	switch {
	case err != nil:
		errs = append(errs, err)
	case count < 0:
		errs = append(errs, fieldErr("count", fmt.Sprintf("must be 0 (no end) or more, got %d", count), ""))
	}
	g.count = int64(count)

	rate, err := cfgNumber(cfg, "rate", 0)
	switch {
	case err != nil:
		errs = append(errs, err)
	case rate < 0:
		errs = append(errs, fieldErr("rate", fmt.Sprintf("must be 0 (as fast as possible) or more, got %v", rate), ""))
	}
	g.rate = rate

	batch, err := cfgInt(cfg, "batch_size", generateMaxBatch)
	switch {
	case err != nil:
		errs = append(errs, err)
	case batch < 1 || batch > generateMaxBatch:
		errs = append(errs, fieldErr("batch_size", fmt.Sprintf("must be between 1 and %d, got %d", generateMaxBatch, batch), ""))
	}
	g.batch = batch

	eventType, _, err := cfgString(cfg, "event_type")
	if err != nil {
		errs = append(errs, err)
	}
	g.eventType = eventType
	if g.eventType == "" {
		g.eventType = name
	}

	data, err := cfgObject(cfg, "data")
	if err != nil {
		errs = append(errs, err)
	}
	src, hasExpr, err := cfgString(cfg, "expr")
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case hasExpr && data != nil:
		errs = append(errs, fieldErr("expr", "cannot be combined with data",
			"use data for a fixed payload, or expr to compute each payload from i"))
	case hasExpr:
		if g.build, err = compileField("expr", src, expr.Map, expr.WithIndex()); err != nil {
			errs = append(errs, err)
		}
	case data != nil:
		if g.fixed, err = expr.AppendJSON(nil, data); err != nil {
			errs = append(errs, fieldErr("data", err.Error(), "write plain values: strings, numbers, booleans, lists and mappings"))
		}
	case cfg["data"] == nil && cfg["expr"] == nil:
		errs = append(errs, fieldErr("", "needs data or expr",
			`give a fixed payload (data: {kind: ping}) or a CEL expression (expr: '{"id": i}')`))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return g, nil
}

// Run emits batches until count events were emitted (returns nil) or ctx
// is done (returns nil). With a rate, a batch holds the events due by now,
// never waiting to fill up, and a stall downstream is not made up for by a
// burst later. An expression that fails for some i stops the run with an
// error naming i.
func (g *generateSource) Run(ctx context.Context, out flow.Emitter) error {
	i := g.start
	first := i
	start := time.Now()
	pe, _ := out.(flow.PositionEmitter)
	var pace *time.Timer
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	for g.count == 0 || i < g.count {
		if ctx.Err() != nil {
			return nil
		}
		n := int64(g.batch)
		if g.count > 0 {
			n = min(n, g.count-i)
		}
		if g.rate > 0 {
			done := i - first
			due := first + int64(time.Since(start).Seconds()*g.rate) + 1 // the first event is due at once
			if lag := int64(g.batch); due-i > lag {
				// More than a batch behind (the pipeline held us back):
				// move the schedule so that one batch is due now, instead
				// of bursting later to catch up.
				start = time.Now().Add(-time.Duration(float64(done+lag-1) / g.rate * float64(time.Second)))
				due = i + lag
			}
			if due <= i {
				wait := time.Until(start.Add(time.Duration(float64(done) / g.rate * float64(time.Second))))
				if wait > 0 {
					if pace == nil {
						pace = time.NewTimer(wait)
					} else {
						pace.Reset(wait)
					}
					select {
					case <-pace.C:
					case <-ctx.Done():
						return nil
					}
					continue
				}
				due = i + 1 // rounding put event i a hair late: it is due
			}
			n = min(n, due-i)
		}
		batch, err := g.makeBatch(i, int(n), time.Now())
		if err != nil {
			return err
		}
		if pe != nil {
			v, _ := json.Marshal(generatePos{Next: i + n})
			err = pe.EmitAt(ctx, batch, flow.Position{Value: v})
		} else {
			err = out.Emit(ctx, batch, nil)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("generate %q: emit: %w", g.name, err)
		}
		i += n
	}
	return nil
}

// makeBatch builds events first..first+n-1. The events, their ids and
// their payloads each live in one allocation per batch: the engine holds a
// batch as a unit, so nothing is kept alive longer than it would be anyway.
func (g *generateSource) makeBatch(first int64, n int, now time.Time) ([]*flow.Event, error) {
	evs := make([]flow.Event, n)
	batch := make([]*flow.Event, n)

	var ids strings.Builder
	ids.Grow(n * (len(g.name) + 8))
	ends := make([]int, n)
	for k := range n {
		ids.WriteString(g.name)
		ids.WriteByte(':')
		var num [20]byte
		ids.Write(strconv.AppendInt(num[:0], first+int64(k), 10))
		ends[k] = ids.Len()
	}
	all := ids.String()

	var buf []byte
	if g.build != nil {
		buf = make([]byte, 0, n*64)
	}
	begin := 0
	for k := range n {
		e := &evs[k]
		e.ID = all[begin:ends[k]]
		begin = ends[k]
		e.Source = g.name
		e.Type = g.eventType
		e.Time = now
		e.DataContentType = "application/json"
		if g.build == nil {
			e.Data = g.fixed
		} else {
			i := first + int64(k)
			from := len(buf)
			var err error
			if buf, err = g.build.AppendIndexMapJSON(buf, i); err != nil {
				return nil, fmt.Errorf("generate %q: event %d: %w", g.name, i, err)
			}
			e.Data = buf[from:len(buf):len(buf)]
		}
		batch[k] = e
	}
	return batch, nil
}

var (
	_ flow.Source  = (*generateSource)(nil)
	_ flow.Resumer = (*generateSource)(nil)
)
