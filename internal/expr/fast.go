package expr

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/flowctl/flowctl/internal/flow"
)

// The compiled fast path.
//
// Compile recognises the frequent shapes of filter and map expressions
// (field reads data.a.b, comparisons, == and != , `in` a list of
// constants, && || ! ?:, int and double arithmetic, double(), int(),
// string(), size(), upperAscii, lowerAscii, startsWith, endsWith,
// contains, has(data.a.b), and the string attributes id, type, source and
// subject) and turns them into Go closures that read the fields straight
// from the event's raw JSON bytes (flow.JSONMember), with no parsed
// map[string]any and no CEL activation.
//
// The fast path only ever answers for the ordinary case: an event whose
// data passes flow.ValidateJSON and an evaluation without error. Anything
// else (a missing field, a type mismatch, an overflow, a division by
// zero, a string with escapes, a field that is an array, a result that
// is an object) makes it give up, and the program is evaluated again by
// cel-go over the parsed payload, so errors and their messages are
// cel-go's by construction. What it computes itself it computes with
// cel-go's rules (heterogeneous numeric comparison and equality, checked
// int arithmetic, rune-based size); FuzzCompiledMatchesCEL checks the two
// agree on random events and expressions.
//
// Expressions that need the whole object (data on its own, data passed to
// a function, comprehensions, map and list results, metadata, time) are
// not compiled: they always take the cel-go path and parse the payload
// once per event as before.

// fkind is the type of a fast value.
type fkind uint8

const (
	kNull fkind = iota + 1
	kBool
	kInt
	kDouble
	kString
	kObject // a JSON object in the event's data, at offset i; never a result
)

// fval is a value of the fast path: no interface, no allocation.
type fval struct {
	k fkind
	// b is a kBool's value; for a kString it says s is known to be
	// valid UTF-8 (read raw from data that passed strict validation, or
	// made from such a string), so that nothing checks it again.
	b bool
	i int64
	f float64
	s string
}

// fnode computes a value over an event, or reports false to hand the
// event to cel-go.
type fnode func(ev *flow.Event) (fval, bool)

// fastProgram is the compiled form of an expression.
type fastProgram struct {
	root     fnode
	usesData bool
	// app, when not nil, writes the root's JSON itself, cheaper than
	// computing the value first (upperAscii and lowerAscii: the mapped
	// string is written, never allocated). It answers as root would.
	app func(dst []byte, ev *flow.Event) ([]byte, bool)
}

// appendJSON writes the JSON of the result over ev, as fval.appendJSON
// writes what eval returns; false, with dst unchanged, where eval or
// appendJSON gives up.
func (fp *fastProgram) appendJSON(dst []byte, ev *flow.Event) ([]byte, bool) {
	if fp.app == nil {
		v, ok := fp.eval(ev)
		if !ok {
			return dst, false
		}
		out, ok := v.appendJSON(dst)
		if !ok {
			return dst, false
		}
		return out, true
	}
	if fp.usesData && !ev.StrictJSON() {
		return dst, false
	}
	return fp.app(dst, ev)
}

// eval runs the fast path over ev.
func (fp *fastProgram) eval(ev *flow.Event) (fval, bool) {
	if fp.usesData && !ev.StrictJSON() {
		return fval{}, false
	}
	v, ok := fp.root(ev)
	if !ok || v.k == kObject {
		return fval{}, false
	}
	return v, true
}

// toVal boxes a fast result as the CEL value cel-go would return.
func (v fval) toVal() ref.Val {
	switch v.k {
	case kBool:
		return types.Bool(v.b)
	case kInt:
		return types.Int(v.i)
	case kDouble:
		return types.Double(v.f)
	case kString:
		return types.String(v.s)
	}
	return types.NullValue
}

// appendJSON writes v as AppendValue writes the CEL value; false for what
// AppendValue would refuse (NaN, infinities), left to the general path.
func (v fval) appendJSON(dst []byte) ([]byte, bool) {
	switch v.k {
	case kBool:
		return strconv.AppendBool(dst, v.b), true
	case kInt:
		return strconv.AppendInt(dst, v.i, 10), true
	case kDouble:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
			return dst, false
		}
		out, err := appendFloat(dst, v.f)
		return out, err == nil
	case kString:
		return flow.AppendJSONString(dst, v.s), true
	case kNull:
		return append(dst, "null"...), true
	}
	return dst, false
}

// compileFast builds the fast path of a checked expression, or nil when a
// part of it is not one of the recognised shapes.
func compileFast(e ast.Expr) *fastProgram {
	fc := fastCompiler{}
	root := fc.node(e)
	if root == nil {
		return nil
	}
	fp := &fastProgram{root: root, usesData: fc.usesData}
	if e.Kind() == ast.CallKind {
		c := e.AsCall()
		if name := c.FunctionName(); (name == "upperAscii" || name == "lowerAscii") && c.IsMemberFunction() && len(c.Args()) == 0 {
			if x := fc.node(c.Target()); x != nil {
				fp.app = caseAppender(x, name == "upperAscii")
			}
		}
	}
	return fp
}

// caseAppender writes x.upperAscii() (upper) or x.lowerAscii() as JSON,
// giving up where unary's function would.
func caseAppender(x fnode, upper bool) func([]byte, *flow.Event) ([]byte, bool) {
	return func(dst []byte, ev *flow.Event) ([]byte, bool) {
		v, ok := x(ev)
		if !ok || v.k != kString || !v.b && !utf8.ValidString(v.s) {
			return dst, false
		}
		return appendJSONStringCase(dst, v.s, upper), true
	}
}

// appendJSONStringCase appends asciiCase(s, upper) as a JSON string, as
// flow.AppendJSONString would, mapping a short string in a buffer on the
// stack instead of allocating it.
func appendJSONStringCase(dst []byte, s string, upper bool) []byte {
	var buf [64]byte
	if len(s) == 0 || len(s) > len(buf) {
		return flow.AppendJSONString(dst, asciiCase(s, upper))
	}
	b := buf[:len(s)]
	copy(b, s)
	lo := byte('a')
	if !upper {
		lo = 'A'
	}
	for i, c := range b {
		if c-lo <= 'z'-'a' {
			b[i] = c ^ 0x20
		}
	}
	return flow.AppendJSONString(dst, unsafe.String(&b[0], len(b)))
}

type fastCompiler struct {
	usesData bool
}

func (fc *fastCompiler) node(e ast.Expr) fnode {
	switch e.Kind() {
	case ast.LiteralKind:
		v, ok := literal(e.AsLiteral())
		if !ok {
			return nil
		}
		return func(*flow.Event) (fval, bool) { return v, true }
	case ast.IdentKind:
		return attribute(e.AsIdent())
	case ast.SelectKind:
		return fc.selectNode(e)
	case ast.CallKind:
		if _, _, ok := indexByString(e); ok {
			return fc.pathNode(e)
		}
		return fc.call(e.AsCall())
	}
	return nil
}

func literal(v ref.Val) (fval, bool) {
	switch t := v.(type) {
	case types.Bool:
		return fval{k: kBool, b: bool(t)}, true
	case types.Int:
		return fval{k: kInt, i: int64(t)}, true
	case types.Double:
		return fval{k: kDouble, f: float64(t)}, true
	case types.String:
		return fval{k: kString, s: string(t)}, true
	case types.Null:
		return fval{k: kNull}, true
	}
	return fval{}, false
}

// attribute reads the string attributes of the event.
func attribute(name string) fnode {
	switch name {
	case "id":
		return func(ev *flow.Event) (fval, bool) { return fval{k: kString, s: ev.ID}, true }
	case "type":
		return func(ev *flow.Event) (fval, bool) { return fval{k: kString, s: ev.Type}, true }
	case "source":
		return func(ev *flow.Event) (fval, bool) { return fval{k: kString, s: ev.Source}, true }
	case "subject":
		return func(ev *flow.Event) (fval, bool) { return fval{k: kString, s: ev.Subject}, true }
	}
	return nil // data alone, time, metadata: the general path
}

// dataPath returns the field names of data.a.b or data["a"]["b"] (["a",
// "b"]), or nil for anything else.
func dataPath(e ast.Expr) []string {
	var rev []string
	for {
		if e.Kind() == ast.SelectKind && !e.AsSelect().IsTestOnly() {
			rev = append(rev, e.AsSelect().FieldName())
			e = e.AsSelect().Operand()
			continue
		}
		if key, operand, ok := indexByString(e); ok {
			rev = append(rev, key)
			e = operand
			continue
		}
		break
	}
	if e.Kind() != ast.IdentKind || e.AsIdent() != "data" || len(rev) == 0 {
		return nil
	}
	path := make([]string, len(rev))
	for i, f := range rev {
		path[len(rev)-1-i] = f
	}
	return path
}

// indexByString matches x["key"].
func indexByString(e ast.Expr) (string, ast.Expr, bool) {
	if e.Kind() != ast.CallKind {
		return "", nil, false
	}
	c := e.AsCall()
	if c.FunctionName() != operators.Index || c.IsMemberFunction() || len(c.Args()) != 2 || c.Args()[1].Kind() != ast.LiteralKind {
		return "", nil, false
	}
	key, ok := c.Args()[1].AsLiteral().(types.String)
	return string(key), c.Args()[0], ok
}

func (fc *fastCompiler) selectNode(e ast.Expr) fnode {
	s := e.AsSelect()
	if s.IsTestOnly() {
		// has(data.a.b): data.a must be an object, then test for b.
		var parent []string
		if op := s.Operand(); op.Kind() == ast.IdentKind && op.AsIdent() == "data" {
			parent = []string{}
		} else if parent = dataPath(op); parent == nil {
			return nil
		}
		fc.usesData = true
		field := s.FieldName()
		return func(ev *flow.Event) (fval, bool) {
			obj, ok := readPath(ev, parent)
			if !ok || obj.k != kObject {
				return fval{}, false
			}
			_, st := member(ev, len(parent) == 0, int(obj.i), field)
			if st == flow.MemberUnsure {
				return fval{}, false
			}
			return fval{k: kBool, b: st == flow.MemberFound}, true
		}
	}
	return fc.pathNode(e)
}

// pathNode reads data.a.b or data["a"]["b"].
func (fc *fastCompiler) pathNode(e ast.Expr) fnode {
	path := dataPath(e)
	if path == nil {
		return nil
	}
	fc.usesData = true
	if len(path) == 1 {
		// data.a, the usual read: straight to the member index when the
		// event has one (then its data is an object).
		key := path[0]
		plain := !strings.ContainsAny(key, "\"\\") // FindPlain may be used
		return func(ev *flow.Event) (fval, bool) {
			if idx := ev.Index(); idx != nil {
				var at int
				var ok bool
				if plain {
					at, ok = idx.FindPlain(ev.Data, key)
				} else {
					at, ok = idx.Find(ev.Data, key)
				}
				if !ok {
					return fval{}, false
				}
				return readValue(ev.Data, at)
			}
			return readPath(ev, path)
		}
	}
	return func(ev *flow.Event) (fval, bool) { return readPath(ev, path) }
}

// readPath reads data.path from the event's raw JSON, which passed
// ValidateJSON.
func readPath(ev *flow.Event, path []string) (fval, bool) {
	data := ev.Data
	i := flow.SkipJSONSpace(data, 0)
	for k, key := range path {
		if i >= len(data) || data[i] != '{' {
			return fval{}, false
		}
		var st flow.MemberStatus
		if i, st = member(ev, k == 0, i, key); st != flow.MemberFound {
			return fval{}, false
		}
	}
	return readValue(data, i)
}

// member finds key in the object at ev.Data[obj]: through the event's
// member index for the top-level object when it has one, else by
// scanning the object.
func member(ev *flow.Event, top bool, obj int, key string) (int, flow.MemberStatus) {
	if top {
		if idx := ev.Index(); idx != nil {
			if at, ok := idx.Find(ev.Data, key); ok {
				return at, flow.MemberFound
			}
			return 0, flow.MemberMissing
		}
	}
	return flow.JSONMember(ev.Data, obj, key)
}

// readValue reads the value at data[i]. Objects stay raw (kObject); arrays
// are left to the general path.
func readValue(data []byte, i int) (fval, bool) {
	if i >= len(data) {
		return fval{}, false
	}
	switch c := data[i]; {
	case c == '"':
		s, ok := flow.JSONString(data, i)
		return fval{k: kString, s: s, b: true}, ok // the data is valid UTF-8
	case c == '{':
		return fval{k: kObject, i: int64(i)}, true
	case c == 't':
		return fval{k: kBool, b: true}, true
	case c == 'f':
		return fval{k: kBool}, true
	case c == 'n':
		return fval{k: kNull}, true
	case c == '-' || (c >= '0' && c <= '9'):
		n, f, isInt, ok := flow.JSONNumber(data, i)
		if isInt {
			return fval{k: kInt, i: n}, ok
		}
		return fval{k: kDouble, f: f}, ok
	}
	return fval{}, false
}

func (fc *fastCompiler) args(call ast.CallExpr, n int) []fnode {
	var exprs []ast.Expr
	if call.IsMemberFunction() {
		exprs = append(exprs, call.Target())
	}
	exprs = append(exprs, call.Args()...)
	if len(exprs) != n {
		return nil
	}
	out := make([]fnode, n)
	for i, e := range exprs {
		if out[i] = fc.node(e); out[i] == nil {
			return nil
		}
	}
	return out
}

func (fc *fastCompiler) call(call ast.CallExpr) fnode {
	name := call.FunctionName()
	switch name {
	case operators.In:
		return fc.inList(call)
	case operators.Conditional:
		a := fc.args(call, 3)
		if a == nil {
			return nil
		}
		cond, yes, no := a[0], a[1], a[2]
		return func(ev *flow.Event) (fval, bool) {
			v, ok := cond(ev)
			if !ok || v.k != kBool {
				return fval{}, false
			}
			if v.b {
				return yes(ev)
			}
			return no(ev)
		}
	}
	switch n := len(call.Args()); {
	case n == 2 && !call.IsMemberFunction():
		a := fc.args(call, 2)
		if a == nil {
			return nil
		}
		if name == operators.Equals || name == operators.NotEquals {
			if eq := fieldEqualsString(call.Args(), binary(name, a[0], a[1]), name == operators.NotEquals); eq != nil {
				return eq
			}
		}
		return binary(name, a[0], a[1])
	case n == 1 && call.IsMemberFunction():
		a := fc.args(call, 2)
		if a == nil {
			return nil
		}
		return stringPair(name, a[0], a[1])
	case (n == 1 && !call.IsMemberFunction()) || (n == 0 && call.IsMemberFunction()):
		a := fc.args(call, 1)
		if a == nil {
			return nil
		}
		return unary(name, a[0])
	}
	return nil
}

// inList compiles x in [constants...].
func (fc *fastCompiler) inList(call ast.CallExpr) fnode {
	if call.IsMemberFunction() || len(call.Args()) != 2 {
		return nil
	}
	lst := call.Args()[1]
	if lst.Kind() != ast.ListKind || len(lst.AsList().OptionalIndices()) > 0 {
		return nil
	}
	var elems []fval
	for _, e := range lst.AsList().Elements() {
		if e.Kind() != ast.LiteralKind {
			return nil
		}
		v, ok := literal(e.AsLiteral())
		if !ok {
			return nil
		}
		elems = append(elems, v)
	}
	x := fc.node(call.Args()[0])
	if x == nil {
		return nil
	}
	return func(ev *flow.Event) (fval, bool) {
		v, ok := x(ev)
		if !ok || v.k == kObject {
			return fval{}, false
		}
		for _, e := range elems {
			if equal(v, e) {
				return fval{k: kBool, b: true}, true
			}
		}
		return fval{k: kBool}, true
	}
}

func binary(name string, x, y fnode) fnode {
	switch name {
	case operators.LogicalAnd, operators.LogicalOr:
		short := name == operators.LogicalOr // the value that decides alone
		return func(ev *flow.Event) (fval, bool) {
			a, ok := x(ev)
			if !ok || a.k != kBool {
				return fval{}, false
			}
			if a.b == short {
				return a, true
			}
			b, ok := y(ev)
			if !ok || b.k != kBool {
				return fval{}, false
			}
			return b, true
		}
	case operators.Equals, operators.NotEquals:
		neg := name == operators.NotEquals
		return func(ev *flow.Event) (fval, bool) {
			a, ok := x(ev)
			if !ok || a.k == kObject {
				return fval{}, false
			}
			b, ok := y(ev)
			if !ok || b.k == kObject {
				return fval{}, false
			}
			return fval{k: kBool, b: equal(a, b) != neg}, true
		}
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		// The operator holds when compare's -1, 0 or 1 is in [lo, hi],
		// decided here rather than by comparing names per event.
		lo, hi := -1, 1
		switch name {
		case operators.Less:
			hi = -1
		case operators.LessEquals:
			hi = 0
		case operators.Greater:
			lo = 1
		default:
			lo = 0
		}
		return func(ev *flow.Event) (fval, bool) {
			a, ok := x(ev)
			if !ok {
				return fval{}, false
			}
			b, ok := y(ev)
			if !ok {
				return fval{}, false
			}
			r, ok := compare(a, b)
			if !ok {
				return fval{}, false
			}
			return fval{k: kBool, b: lo <= r && r <= hi}, true
		}
	case operators.Add, operators.Subtract, operators.Multiply, operators.Divide, operators.Modulo:
		op := arithOps[name]
		return func(ev *flow.Event) (fval, bool) {
			a, ok := x(ev)
			if !ok {
				return fval{}, false
			}
			b, ok := y(ev)
			if !ok {
				return fval{}, false
			}
			return arith(op, a, b)
		}
	}
	return nil
}

// arithOp names an arithmetic operator, so that evaluating one switches
// on a small integer instead of comparing operator names.
type arithOp uint8

const (
	opAdd arithOp = iota
	opSubtract
	opMultiply
	opDivide
	opModulo
)

var arithOps = map[string]arithOp{
	operators.Add: opAdd, operators.Subtract: opSubtract, operators.Multiply: opMultiply,
	operators.Divide: opDivide, operators.Modulo: opModulo,
}

// equal is cel-go's heterogeneous equality on scalars: numbers compare by
// value across int and double, other kinds only equal their own kind.
func equal(a, b fval) bool {
	switch {
	case a.k == kInt && b.k == kInt:
		return a.i == b.i
	case a.k == kDouble && b.k == kDouble:
		return a.f == b.f
	case a.k == kDouble && b.k == kInt:
		return !math.IsNaN(a.f) && compareDoubleInt(a.f, b.i) == 0
	case a.k == kInt && b.k == kDouble:
		return !math.IsNaN(b.f) && compareDoubleInt(b.f, a.i) == 0
	case a.k != b.k:
		return false
	case a.k == kString:
		return a.s == b.s
	case a.k == kBool:
		return a.b == b.b
	}
	return a.k == kNull
}

// compare orders two values as cel-go does; false where cel-go fails (NaN,
// different kinds other than int and double, null, objects).
func compare(a, b fval) (int, bool) {
	switch {
	case a.k == kInt && b.k == kInt:
		return cmp3(a.i < b.i, a.i > b.i), true
	case a.k == kDouble && b.k == kDouble:
		if math.IsNaN(a.f) || math.IsNaN(b.f) {
			return 0, false
		}
		return cmp3(a.f < b.f, a.f > b.f), true
	case a.k == kDouble && b.k == kInt:
		if math.IsNaN(a.f) {
			return 0, false
		}
		return compareDoubleInt(a.f, b.i), true
	case a.k == kInt && b.k == kDouble:
		if math.IsNaN(b.f) {
			return 0, false
		}
		return -compareDoubleInt(b.f, a.i), true
	case a.k == kString && b.k == kString:
		return strings.Compare(a.s, b.s), true
	case a.k == kBool && b.k == kBool:
		return cmp3(!a.b && b.b, a.b && !b.b), true
	}
	return 0, false
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

// compareDoubleInt is cel-go's comparison of a double with an int.
func compareDoubleInt(d float64, i int64) int {
	if d < math.MinInt64 {
		return -1
	}
	if d > math.MaxInt64 {
		return 1
	}
	return cmp3(d < float64(i), d > float64(i))
}

// arith is + - * / % on two ints, two doubles, or + on two strings, with
// cel-go's overflow and division checks (which fail to the general path).
func arith(op arithOp, a, b fval) (fval, bool) {
	switch {
	case a.k == kInt && b.k == kInt:
		x, y := a.i, b.i
		var r int64
		switch op {
		case opAdd:
			r = x + y
			if (r > x) != (y > 0) {
				return fval{}, false
			}
		case opSubtract:
			r = x - y
			if (r < x) != (y > 0) {
				return fval{}, false
			}
		case opMultiply:
			if x != 0 && y != 0 {
				r = x * y
				if (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) || r/y != x {
					return fval{}, false
				}
			}
		case opDivide:
			if y == 0 || (x == math.MinInt64 && y == -1) {
				return fval{}, false
			}
			r = x / y
		case opModulo:
			if y == 0 || (x == math.MinInt64 && y == -1) {
				return fval{}, false
			}
			r = x % y
		}
		return fval{k: kInt, i: r}, true
	case a.k == kDouble && b.k == kDouble:
		x, y := a.f, b.f
		var r float64
		switch op {
		case opAdd:
			r = x + y
		case opSubtract:
			r = x - y
		case opMultiply:
			r = x * y
		case opDivide:
			r = x / y
		default:
			return fval{}, false
		}
		return fval{k: kDouble, f: r}, true
	case a.k == kString && b.k == kString && op == opAdd:
		return fval{k: kString, s: a.s + b.s}, true
	}
	return fval{}, false
}

func unary(name string, x fnode) fnode {
	var f func(fval) (fval, bool)
	switch name {
	case operators.LogicalNot:
		f = func(v fval) (fval, bool) { return fval{k: kBool, b: !v.b}, v.k == kBool }
	case operators.Negate:
		f = func(v fval) (fval, bool) {
			switch {
			case v.k == kInt && v.i != math.MinInt64:
				return fval{k: kInt, i: -v.i}, true
			case v.k == kDouble:
				return fval{k: kDouble, f: -v.f}, true
			}
			return fval{}, false
		}
	case "double":
		f = func(v fval) (fval, bool) {
			switch v.k {
			case kInt:
				return fval{k: kDouble, f: float64(v.i)}, true
			case kDouble:
				return v, true
			}
			return fval{}, false
		}
	case "int":
		f = func(v fval) (fval, bool) {
			switch v.k {
			case kInt:
				return v, true
			case kDouble:
				d := v.f
				if math.IsInf(d, 0) || math.IsNaN(d) || d <= math.MinInt64 || d >= math.MaxInt64 {
					return fval{}, false
				}
				return fval{k: kInt, i: int64(d)}, true
			}
			return fval{}, false
		}
	case "string":
		f = func(v fval) (fval, bool) {
			switch v.k {
			case kString:
				return v, true
			case kInt:
				return fval{k: kString, s: strconv.FormatInt(v.i, 10)}, true
			case kBool:
				return fval{k: kString, s: strconv.FormatBool(v.b)}, true
			}
			return fval{}, false
		}
	case "size":
		f = func(v fval) (fval, bool) {
			if v.k != kString {
				return fval{}, false
			}
			return fval{k: kInt, i: int64(utf8.RuneCountInString(v.s))}, true
		}
	case "upperAscii", "lowerAscii":
		upper := name == "upperAscii"
		f = func(v fval) (fval, bool) {
			if v.k != kString || !v.b && !utf8.ValidString(v.s) {
				return fval{}, false
			}
			return fval{k: kString, s: asciiCase(v.s, upper), b: true}, true
		}
	default:
		return nil
	}
	return func(ev *flow.Event) (fval, bool) {
		v, ok := x(ev)
		if !ok {
			return fval{}, false
		}
		return f(v)
	}
}

// asciiCase maps the ASCII letters of s to upper or lower case, as the
// strings extension does for valid UTF-8, copying only when needed.
func asciiCase(s string, upper bool) string {
	lo, hi := byte('a'), byte('z')
	if !upper {
		lo, hi = 'A', 'Z'
	}
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if b[i] >= lo && b[i] <= hi {
			b[i] ^= 0x20
		}
	}
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is never written again
}

// stringPair compiles the member functions of a string with a string
// argument.
func stringPair(name string, x, y fnode) fnode {
	var f func(s, t string) bool
	switch name {
	case "startsWith":
		f = strings.HasPrefix
	case "endsWith":
		f = strings.HasSuffix
	case "contains":
		f = strings.Contains
	default:
		return nil
	}
	return func(ev *flow.Event) (fval, bool) {
		a, ok := x(ev)
		if !ok || a.k != kString {
			return fval{}, false
		}
		b, ok := y(ev)
		if !ok || b.k != kString {
			return fval{}, false
		}
		return fval{k: kBool, b: f(a.s, b.s)}, true
	}
}

// fastObject is the fast path of an object literal {"k": expr, ...} with
// constant, distinct string keys, as the map processor's expr usually is:
// it writes the object as JSON (keys sorted, as AppendValue writes a CEL
// map) straight from the event's fields.
type fastObject struct {
	keys     [][]byte // `"key":`, sorted by key
	vals     []fnode
	usesData bool
}

func compileFastObject(e ast.Expr) *fastObject {
	if e.Kind() != ast.MapKind {
		return nil
	}
	type entry struct {
		key string
		val fnode
	}
	fc := fastCompiler{}
	var entries []entry
	for _, en := range e.AsMap().Entries() {
		if en.Kind() != ast.MapEntryKind {
			return nil
		}
		me := en.AsMapEntry()
		if me.IsOptional() || me.Key().Kind() != ast.LiteralKind {
			return nil
		}
		k, ok := me.Key().AsLiteral().(types.String)
		if !ok {
			return nil
		}
		v := fc.node(me.Value())
		if v == nil {
			return nil
		}
		entries = append(entries, entry{string(k), v})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	fo := &fastObject{usesData: fc.usesData}
	for i, en := range entries {
		if i > 0 && en.key == entries[i-1].key {
			return nil // cel-go fails on a repeated key
		}
		fo.keys = append(fo.keys, append(flow.AppendJSONString(nil, en.key), ':'))
		fo.vals = append(fo.vals, en.val)
	}
	return fo
}

// appendJSON appends the object, or reports false with dst unchanged
// when a value is not one the fast path computes.
func (fo *fastObject) appendJSON(dst []byte, ev *flow.Event) ([]byte, bool) {
	if fo.usesData && !ev.StrictJSON() {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, '{')
	for i, val := range fo.vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, fo.keys[i]...)
		v, ok := val(ev)
		if !ok {
			return dst[:start], false
		}
		if dst, ok = v.appendJSON(dst); !ok {
			return dst[:start], false
		}
	}
	return append(dst, '}'), true
}

// fieldEqualsString compiles data.a == "c" (either way round, or !=) to
// a comparison of the member's raw bytes with c, for a constant without
// quotes or backslashes, so a filter on a string field reads no more of
// the value than it must. Where the raw bytes cannot decide (the value is
// not a string, the event has no member index, an escape before the
// first difference) it answers as general, the node it stands for.
func fieldEqualsString(args []ast.Expr, general fnode, neg bool) fnode {
	path, lit := dataPath(args[0]), args[1]
	if path == nil {
		path, lit = dataPath(args[1]), args[0]
	}
	if len(path) != 1 || lit.Kind() != ast.LiteralKind {
		return nil
	}
	c, ok := lit.AsLiteral().(types.String)
	if !ok || strings.ContainsAny(string(c), "\"\\") {
		return nil
	}
	key, want := path[0], string(c)
	if strings.ContainsAny(key, "\"\\") {
		return nil // never in an indexed object: the general node
	}
	return func(ev *flow.Event) (fval, bool) {
		idx := ev.Index()
		if idx == nil {
			return general(ev)
		}
		data := ev.Data
		at, found := idx.FindPlain(data, key)
		if !found || data[at] != '"' {
			return general(ev)
		}
		// data passed ValidateJSON, so the string ends before data does.
		raw := data[at+1:]
		for k := 0; k < len(want); k++ {
			if raw[k] != want[k] {
				if raw[k] == '\\' {
					return general(ev) // an escape may still spell want
				}
				// The value's first k bytes are want's (no escape so
				// far), and byte k differs or the string ends there.
				return fval{k: kBool, b: neg}, true
			}
		}
		// want matched up to here: equal when the string ends now; any
		// more bytes (escaped or not) make it longer.
		return fval{k: kBool, b: (raw[len(want)] == '"') != neg}, true
	}
}
