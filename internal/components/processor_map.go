package components

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/common/types/ref"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleProcessor,
		Name:    "map",
		Summary: "Reshapes the payload: sets or deletes top-level fields, or builds a whole new object with CEL.",
		Fields: []flow.Field{
			{
				Name:        "set",
				Type:        flow.TypeMap,
				Items:       &flow.Field{Type: flow.TypeCEL},
				Description: "Top-level fields to add or replace, each computed by a CEL expression over the incoming event (never over another set). Names are literal keys (no nesting). Existing fields keep their place and bytes; new ones are appended in name order.",
				Example:     map[string]any{"total_cents": "data.amount * 100"},
			},
			{
				Name:        "delete",
				Type:        flow.TypeStrings,
				Description: "Top-level fields to remove (after set).",
				Example:     []any{"internal_note"},
			},
			{
				Name:        "expr",
				Type:        flow.TypeCEL,
				CELResult:   "map",
				Description: "CEL expression returning an object that replaces the whole payload (keys written in sorted order). Not with set or delete.",
				Example:     `{"id": data.id, "big": data.amount >= 5000}`,
			},
		},
		Examples: []string{
			"set:\n  total_cents: \"data.amount * 100\"\n  account: \"data.account.upperAscii()\"\ndelete: [ts]",
			`expr: '{"id": data.id, "big": data.amount >= 5000}'`,
		},
		Validate: validateWith(parseMap),
		New: func(bc flow.BuildContext) (any, error) {
			return parseMap(bc.Config)
		},
	})
}

// mapProcessor builds a new payload for every event. The output is a new
// event carrying the re-encoded JSON (object keys sorted) and the input's
// other attributes; the input is never modified.
type mapProcessor struct {
	set []mapSetField // sorted by name, so errors come in a stable order
	del []string
	// nameLens has bit L set when a set or deleted name is L bytes long
	// (bit 63 for every length from 63 on): splice compares a member's
	// key with the names only when its length is among them.
	nameLens uint64
	whole    *expr.Program
	// events are the output events, allocated a block at a time.
	events flow.EventBlock
}

type mapSetField struct {
	name    string
	keyJSON []byte // `"name":`, encoded once
	prg     *expr.Program
}

func parseMap(cfg flow.Config) (*mapProcessor, error) {
	var errs []error
	m := &mapProcessor{}

	set, err := cfgObject(cfg, "set")
	if err != nil {
		errs = append(errs, err)
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := "set." + name
		if name == "" {
			errs = append(errs, fieldErr(path, "field name is empty", "name the field to set, for example total: \"data.amount * 2\""))
			continue
		}
		src, ok := set[name].(string)
		if !ok {
			errs = append(errs, fieldErr(path, fmt.Sprintf("must be a CEL expression (a string), got %T", set[name]), `quote it, for example "data.amount * 2"`))
			continue
		}
		prg, err := compileField(path, src, expr.Any)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		key, _ := expr.AppendJSON(nil, name)
		m.set = append(m.set, mapSetField{name: name, keyJSON: append(key, ':'), prg: prg})
	}

	del, err := cfgList(cfg, "delete")
	if err != nil {
		errs = append(errs, err)
	}
	for i, d := range del {
		path := fmt.Sprintf("delete[%d]", i)
		name, ok := d.(string)
		switch {
		case !ok || name == "":
			errs = append(errs, fieldErr(path, "must be a field name", "write the name of a top-level field"))
		case set[name] != nil:
			errs = append(errs, fieldErr(path, fmt.Sprintf("field %q is both set and deleted", name), "remove it from set or from delete"))
		default:
			m.del = append(m.del, name)
		}
	}

	src, hasExpr, err := cfgString(cfg, "expr")
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case hasExpr && (len(set) > 0 || len(del) > 0):
		errs = append(errs, fieldErr("expr", "cannot be combined with set or delete",
			"use expr to build a whole new object, or set and delete to change fields of the incoming one"))
	case hasExpr:
		if m.whole, err = compileField("expr", src, expr.Map); err != nil {
			errs = append(errs, err)
		}
	case len(set) == 0 && len(del) == 0 && len(errs) == 0:
		errs = append(errs, fieldErr("", "needs set, delete or expr",
			`for example set: {total: "data.amount * 2"}, or expr: '{"id": data.id}'`))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, f := range m.set {
		m.nameLens |= nameLenBit(len(f.name))
	}
	for _, name := range m.del {
		m.nameLens |= nameLenBit(len(name))
	}
	return m, nil
}

// Process emits one new event with the reshaped payload. With set and
// delete the incoming object's members keep their order and their bytes:
// replaced fields are rewritten in place, new ones appended in name order.
// A payload that is not a JSON object (for set and delete) or an
// expression that fails fails the event; the engine applies on_error.
// Safe for concurrent use.
func (m *mapProcessor) Process(_ context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	var data []byte
	var err error
	if m.whole != nil {
		data, err = m.whole.AppendMapJSON(make([]byte, 0, len(in.Data)+32), in)
	} else {
		data, err = m.edit(in)
	}
	if err != nil {
		return out, err
	}
	ev := in.WithDataInto(m.events.New(), data)
	if ct := ev.DataContentType; ct != "" && ct != "application/json" && !strings.Contains(ct, "json") {
		// The payload is JSON now, whatever it was before.
		ev.DataContentType = "application/json"
	}
	return append(out, ev), nil
}

// edit applies set and delete to the payload of in.
//
// On the hot path (data that passes strict validation and is an object,
// expressions the compiled fast path answers) nothing is parsed: the
// values are written as JSON into a scratch buffer straight from the raw
// payload, and splice copies them in.
func (m *mapProcessor) edit(in *flow.Event) ([]byte, error) {
	if i := flow.SkipJSONSpace(in.Data, 0); !in.StrictJSON() || i >= len(in.Data) || in.Data[i] != '{' {
		// The parsed view says what is wrong, if anything.
		if err := checkObject(in); err != nil {
			return nil, err
		}
	}
	// Every expression reads the incoming event, never an earlier set. A
	// value the fast path wrote is scratch[fastAt[k]:fastAt[k+1]]; the
	// others are in vals. The scratch and the spliced payload are written
	// in buffers reused from mapBufPool (the writers' buffers escape, so
	// a buffer on the stack would be a new allocation per event), and the
	// payload is then copied to an allocation of its size.
	bufs := mapBufPool.Get().(*mapBufs)
	defer mapBufPool.Put(bufs)
	var small [8]ref.Val
	var atSmall [9]int
	vals, fastAt, scratch := small[:0], atSmall[:0], bufs.scratch[:0]
	for _, f := range m.set {
		fastAt = append(fastAt, len(scratch))
		var ok bool
		if scratch, ok = f.prg.AppendFastJSON(scratch, in); ok {
			vals = append(vals, nil)
			continue
		}
		x, err := f.prg.Eval(in)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", f.name, err)
		}
		vals = append(vals, x)
	}
	bufs.keep(&bufs.scratch, scratch)
	fastAt = append(fastAt, len(scratch))
	size := len(in.Data) + len(scratch) + 16*len(m.set)
	out, ok, err := m.splice(bufs.out[:0], in.Data, in.Index(), vals, fastAt, scratch)
	if err != nil {
		return nil, err
	}
	if ok {
		bufs.keep(&bufs.out, out)
		return append([]byte(nil), out...), nil
	}
	for k, f := range m.set {
		if vals[k] == nil {
			x, err := f.prg.Eval(in)
			if err != nil {
				return nil, fmt.Errorf("set %s: %w", f.name, err)
			}
			vals[k] = x
		}
	}
	v, err := in.Value()
	if err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	return m.rebuild(make([]byte, 0, size), v.(map[string]any), vals)
}

// mapBufs are the scratch buffers of one edit.
type mapBufs struct{ scratch, out []byte }

// mapBufPool holds mapBufs between edits, shared by every map processor.
var mapBufPool = sync.Pool{New: func() any { return new(mapBufs) }}

// keep stores b (a buffer grown from *dst) in *dst for the next edit,
// unless it grew beyond 64 KiB (a rare huge payload is not kept alive).
func (*mapBufs) keep(dst *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*dst = b[:0]
	}
}

// checkObject fails an event whose payload is not a JSON object, using
// the parsed view.
func checkObject(in *flow.Event) error {
	v, err := in.Value()
	if err != nil {
		return fmt.Errorf("event data: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("event data is %s, not a JSON object: set and delete change fields of an object", flow.JSONKind(v))
	}
	return nil
}

// splice writes the edited object by copying the members of raw that stay
// as they are and encoding only the values that set computed, so unchanged
// fields keep their exact bytes and order. ok is false, with nothing
// written, for what it does not handle (a key with escapes): rebuild does.
// index, when not nil, lists the members of raw (see flow.Event.Index).
func (m *mapProcessor) splice(dst, raw []byte, index *flow.MemberIndex, vals []ref.Val, fastAt []int, scratch []byte) ([]byte, bool, error) {
	var doneSmall [8]bool
	done := doneSmall[:0]
	for range m.set {
		done = append(done, false)
	}
	i := flow.SkipJSONSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false, nil
	}
	i = flow.SkipJSONSpace(raw, i+1)
	dst = append(dst, '{')
	first := true
	member := 0
	// raw[runStart:runEnd] are members kept as they are that follow one
	// another with a bare comma between them, still to be copied: one
	// copy for the run instead of one a member.
	runStart, runEnd := -1, -1
	for {
		var key []byte
		var memberStart, valEnd int
		if index != nil {
			// The members as validation recorded them: no scan.
			if member == index.Len() {
				break
			}
			key, memberStart, _, valEnd = index.Member(raw, member)
			member++
		} else {
			if i >= len(raw) || raw[i] == '}' {
				break
			}
			if raw[i] == ',' {
				i = flow.SkipJSONSpace(raw, i+1)
				continue
			}
			if raw[i] != '"' {
				return nil, false, nil
			}
			keyEnd, escaped := flow.ScanJSONString(raw, i)
			if escaped || keyEnd < 0 {
				return nil, false, nil
			}
			key = raw[i+1 : keyEnd-1]
			colon := flow.SkipJSONSpace(raw, keyEnd)
			if colon >= len(raw) || raw[colon] != ':' {
				return nil, false, nil
			}
			valStart := flow.SkipJSONSpace(raw, colon+1)
			valEnd = flow.SkipJSONValue(raw, valStart)
			if valEnd < 0 {
				return nil, false, nil
			}
			memberStart = i
			i = flow.SkipJSONSpace(raw, valEnd)
		}

		idx := -1
		if m.nameLens&nameLenBit(len(key)) != 0 {
			if mapHasName(m.del, key) {
				continue
			}
			for k := range m.set {
				if m.set[k].name == string(key) {
					idx = k
					break
				}
			}
		}
		if idx >= 0 && done[idx] {
			continue // a repeated key: the parsed view kept one value, so do we
		}
		if idx < 0 {
			if runStart >= 0 && memberStart == runEnd+1 && raw[runEnd] == ',' {
				runEnd = valEnd
				continue
			}
			if runStart >= 0 {
				dst = mapComma(dst, &first)
				dst = append(dst, raw[runStart:runEnd]...)
			}
			runStart, runEnd = memberStart, valEnd
			continue
		}
		if runStart >= 0 {
			dst = mapComma(dst, &first)
			dst = append(dst, raw[runStart:runEnd]...)
			runStart = -1
		}
		dst = mapComma(dst, &first)
		done[idx] = true
		var err error
		if dst, err = m.appendSet(dst, idx, vals, fastAt, scratch); err != nil {
			return nil, false, err
		}
	}
	if runStart >= 0 {
		dst = mapComma(dst, &first)
		dst = append(dst, raw[runStart:runEnd]...)
	}
	for k := range m.set {
		if done[k] {
			continue
		}
		dst = mapComma(dst, &first)
		var err error
		if dst, err = m.appendSet(dst, k, vals, fastAt, scratch); err != nil {
			return nil, false, err
		}
	}
	return append(dst, '}'), true, nil
}

// mapComma appends the comma before a member unless it is the first.
func mapComma(dst []byte, first *bool) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	return dst
}

// appendSet writes the member of set k: the bytes the fast path wrote, or
// the encoding of the CEL value.
func (m *mapProcessor) appendSet(dst []byte, k int, vals []ref.Val, fastAt []int, scratch []byte) ([]byte, error) {
	dst = append(dst, m.set[k].keyJSON...)
	if vals[k] == nil {
		return append(dst, scratch[fastAt[k]:fastAt[k+1]]...), nil
	}
	dst, err := expr.AppendValue(dst, vals[k])
	if err != nil {
		return nil, fmt.Errorf("set %s: %w", m.set[k].name, err)
	}
	return dst, nil
}

// rebuild encodes the edited object from the parsed payload (keys sorted):
// the general path behind splice.
func (m *mapProcessor) rebuild(dst []byte, orig map[string]any, vals []ref.Val) ([]byte, error) {
	obj := make(map[string]any, len(orig)+len(m.set))
	for k, x := range orig {
		obj[k] = x
	}
	for k, f := range m.set {
		x, err := expr.ToGo(vals[k])
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", f.name, err)
		}
		obj[f.name] = x
	}
	for _, name := range m.del {
		delete(obj, name)
	}
	dst, err := expr.AppendJSON(dst, obj)
	if err != nil {
		return nil, fmt.Errorf("encode the new payload: %w", err)
	}
	return dst, nil
}

// nameLenBit is the bit of mapProcessor.nameLens for a name n bytes long.
func nameLenBit(n int) uint64 { return 1 << min(n, 63) }

// mapHasName reports whether key is one of names, without converting key
// to a string on the heap.
func mapHasName(names []string, key []byte) bool {
	for _, n := range names {
		if n == string(key) {
			return true
		}
	}
	return false
}

var _ flow.Processor = (*mapProcessor)(nil)
