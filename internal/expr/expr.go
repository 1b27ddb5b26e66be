package expr

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"

	"github.com/flowctl/flowctl/internal/flow"
)

// Result is the type an expression must return.
type Result int

// The result types a component can ask for. Any accepts every type.
const (
	Any Result = iota
	Bool
	String
	Int
	Map
)

// String returns the CEL name of the result type.
func (r Result) String() string {
	switch r {
	case Bool:
		return "bool"
	case String:
		return "string"
	case Int:
		return "int"
	case Map:
		return "map"
	}
	return "any"
}

// Option changes how Compile declares an expression's environment.
type Option func(*options)

type options struct {
	index bool
}

// WithIndex compiles for a generating source: the only variable is `i`, the
// index (int) of the event being generated, because there is no input event
// whose attributes could be read. Such a program is evaluated with EvalIndex.
func WithIndex() Option { return func(o *options) { o.index = true } }

// Error is a compile error: the expression does not parse, refers to
// something undeclared, or returns the wrong type. It is written for the
// user of the pipeline file.
type Error struct {
	// Line and Column are 1-based positions inside the expression; 0 when
	// the error concerns the whole expression (such as its result type).
	Line, Column int
	// Message says what is wrong.
	Message string
	// Hint says how to fix it.
	Hint string
	// more holds further errors of the same expression, reported together.
	more []*Error
}

// Error returns the message with its position, then any further errors of
// the same expression, separated by "; ".
func (e *Error) Error() string {
	var b strings.Builder
	e.write(&b)
	for _, m := range e.more {
		b.WriteString("; ")
		m.write(&b)
	}
	return b.String()
}

func (e *Error) write(b *strings.Builder) {
	b.WriteString(e.Message)
	switch {
	case e.Line > 1:
		fmt.Fprintf(b, " at line %d, column %d", e.Line, e.Column)
	case e.Column > 0:
		fmt.Fprintf(b, " at column %d", e.Column)
	}
}

// FieldError turns a Compile error into the config error of the field at
// path (such as "expr" or "cases[1].when"), keeping its hint.
func FieldError(path string, err error) *flow.FieldError {
	var ce *Error
	if errors.As(err, &ce) {
		return &flow.FieldError{Path: path, Message: ce.Error(), Hint: ce.Hint}
	}
	return &flow.FieldError{Path: path, Message: err.Error()}
}

// Program is a compiled expression. It is immutable and safe for concurrent
// use.
type Program struct {
	src      string
	label    string // the source quoted and shortened, for evaluation errors
	want     Result
	index    bool
	usesData bool
	prg      cel.Program
	fast     *fastProgram // nil: always cel-go (see fast.go)
	fastObj  *fastObject  // an object literal's fast path, for AppendMapJSON
}

// Source returns the expression as written.
func (p *Program) Source() string { return p.src }

// Result returns the result type the program was compiled for.
func (p *Program) Result() Result { return p.want }

var (
	eventEnv = sync.OnceValues(func() (*cel.Env, error) {
		return cel.NewEnv(append(stdLibs(),
			cel.Variable("data", cel.DynType),
			cel.Variable("id", cel.StringType),
			cel.Variable("type", cel.StringType),
			cel.Variable("source", cel.StringType),
			cel.Variable("subject", cel.StringType),
			cel.Variable("time", cel.TimestampType),
			cel.Variable("metadata", cel.MapType(cel.StringType, cel.StringType)),
		)...)
	})
	indexEnv = sync.OnceValues(func() (*cel.Env, error) {
		return cel.NewEnv(append(stdLibs(), cel.Variable("i", cel.IntType))...)
	})
)

// stdLibs are cel-go's standard extensions, at their latest versions.
func stdLibs() []cel.EnvOption {
	return []cel.EnvOption{
		ext.Strings(), ext.Math(), ext.Encoders(), ext.Lists(), ext.Sets(),
		ext.Bindings(), ext.TwoVarComprehensions(), cel.OptionalTypes(),
	}
}

// The compile cache lets a constructor reuse the program its Validate hook
// already compiled, so every expression is compiled once per process.
type cacheKey struct {
	src   string
	want  Result
	index bool
}

const cacheMax = 4096

var (
	cacheMu sync.Mutex
	cache   = map[cacheKey]*Program{}
)

// Compile parses and type-checks src and checks that it returns want. The
// error is an *Error ready to show to the user (use FieldError to attach it
// to a config field). Programs are cached by source, so compiling the same
// expression again is cheap.
func Compile(src string, want Result, opts ...Option) (*Program, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	key := cacheKey{src, want, o.index}
	cacheMu.Lock()
	p := cache[key]
	cacheMu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := compile(src, want, o)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	if len(cache) >= cacheMax {
		clear(cache)
	}
	cache[key] = p
	cacheMu.Unlock()
	return p, nil
}

func compile(src string, want Result, o options) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Message: "expression is empty", Hint: "write a CEL expression, for example data.amount >= 5000"}
	}
	env, err := eventEnv()
	if o.index {
		env, err = indexEnv()
	}
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, issuesError(iss, o.index)
	}
	if err := checkResult(ast.OutputType(), want); err != nil {
		return nil, err
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("plan CEL program: %w", err)
	}
	p := &Program{src: src, label: label(src), want: want, index: o.index, prg: prg}
	if !o.index {
		if want == Map {
			p.fastObj = compileFastObject(ast.NativeRep().Expr())
		} else {
			p.fast = compileFast(ast.NativeRep().Expr())
		}
	}
	for _, r := range ast.NativeRep().ReferenceMap() {
		if r.Name == "data" {
			p.usesData = true
		}
	}
	return p, nil
}

// label quotes src for error messages, shortened so that a long expression
// does not drown the message.
func label(src string) string {
	const maxRunes = 60
	s := strings.Join(strings.Fields(src), " ")
	if r := []rune(s); len(r) > maxRunes {
		s = string(r[:maxRunes-1]) + "…"
	}
	return strconv.Quote(s)
}

// checkResult rejects an expression whose static type cannot be want. A dyn
// result (such as data.flag) is accepted here and checked at evaluation.
func checkResult(got *cel.Type, want Result) error {
	if want == Any || got.Kind() == types.DynKind {
		return nil
	}
	var ok bool
	switch want {
	case Bool:
		ok = got.Kind() == types.BoolKind
	case String:
		ok = got.Kind() == types.StringKind
	case Int:
		ok = got.Kind() == types.IntKind
	case Map:
		ok = got.Kind() == types.MapKind
	}
	if ok {
		return nil
	}
	return &Error{
		Message: fmt.Sprintf("expression must return %s, got %s", want, typeName(got)),
		Hint:    resultHint[want],
	}
}

var resultHint = map[Result]string{
	Bool:   "make it a condition, for example data.amount >= 5000 or has(data.user)",
	String: "convert it with string(...), for example string(data.id)",
	Int:    "convert it with int(...), for example int(data.count)",
	Map:    `build an object, for example {"id": data.id, "total": data.amount * 2}`,
}

// typeName names a CEL type the way a user writes it ("map(string, int)").
func typeName(t *cel.Type) string {
	if t.Kind() == types.MapKind && len(t.Parameters()) == 2 {
		return "map(" + typeName(t.Parameters()[0]) + ", " + typeName(t.Parameters()[1]) + ")"
	}
	if t.Kind() == types.ListKind && len(t.Parameters()) == 1 {
		return "list(" + typeName(t.Parameters()[0]) + ")"
	}
	return t.String()
}

func issuesError(iss *cel.Issues, index bool) error {
	var first *Error
	for _, ce := range iss.Errors() {
		e := &Error{
			Line:    ce.Location.Line(),
			Column:  ce.Location.Column() + 1,
			Message: strings.TrimSuffix(ce.Message, " (in container '')"),
		}
		if strings.HasPrefix(e.Message, "Syntax error: ") {
			if first != nil {
				// After a syntax error the parser's further complaints
				// are mostly echoes of the first one.
				break
			}
			e.Message, e.Hint = syntaxMessage(e.Message)
		} else {
			e.Message, e.Hint = undeclaredHint(e.Message, index)
		}
		if e.Hint == "" {
			e.Hint = issueHint(e.Message)
		}
		if first == nil {
			first = e
		} else {
			first.more = append(first.more, e)
		}
	}
	if first == nil {
		return &Error{Message: iss.Err().Error()}
	}
	if first.Hint == "" {
		for _, m := range first.more {
			if m.Hint != "" {
				first.Hint = m.Hint
				break
			}
		}
	}
	return first
}

var undeclaredRE = regexp.MustCompile(`^undeclared reference to '([^']+)'(?: \(did you mean '([^']+)'(?: or '([^']+)')?\?\))?`)

// undeclaredHint rewrites an undeclared-reference error for flowctl's
// variables: the usual mistake is a payload field written without data.,
// and cel-go's own guesses may name functions ("did you mean 'bind'?")
// that would mislead. It returns msg unchanged and no hint for other
// errors.
func undeclaredHint(msg string, index bool) (string, string) {
	m := undeclaredRE.FindStringSubmatch(msg)
	if m == nil {
		return msg, ""
	}
	name := m[1]
	msg = "undeclared reference to '" + name + "'" + msg[len(m[0]):]
	vars := eventVarNames
	if index {
		vars = []string{"i"}
	}
	var near []string
	for _, g := range m[2:] {
		if slices.Contains(vars, g) {
			near = append(near, g)
		}
	}
	if index {
		return msg, "the only variable here is i, the index of the generated event (an int)"
	}
	hint := "the variables are data, id, type, source, subject, time and metadata; payload fields are data.<field>"
	if len(near) > 0 {
		hint = "did you mean " + strings.Join(near, " or ") + "? " + hint
	} else if !strings.Contains(name, ".") {
		hint = "did you mean data." + name + "? " + hint
	}
	return msg, hint
}

var eventVarNames = []string{"data", "id", "type", "source", "subject", "time", "metadata"}

var (
	syntaxInputRE   = regexp.MustCompile(`^Syntax error: (?:mismatched|extraneous) input '(.*)' expecting (.*)$`)
	syntaxMissingRE = regexp.MustCompile(`^Syntax error: missing (.*) at '(.*)'$`)
	syntaxTokenRE   = regexp.MustCompile(`^Syntax error: token recognition error at: '(.*)'$`)
)

const syntaxHint = `check the CEL syntax: && || ! for logic, == != < <= > >= to compare, "text" or 'text' for strings`

// syntaxMessage rewrites the parser's messages, whose token lists
// ("expecting {'[', '{', '(', ...}") say little to someone writing a
// condition, into a short statement of what is wrong.
func syntaxMessage(msg string) (string, string) {
	if m := syntaxInputRE.FindStringSubmatch(msg); m != nil {
		tok, want := m[1], m[2]
		where := " where " + want + " is expected"
		switch {
		case strings.HasPrefix(want, "{"):
			where = " where a value is expected"
		case want == "<EOF>":
			where = " after a complete expression"
		}
		if tok == "<EOF>" {
			return "syntax error: the expression ends" + where, syntaxHint
		}
		if tok == "and" || tok == "or" || tok == "not" {
			return "syntax error: unexpected '" + tok + "'" + where, "CEL writes and, or, not as &&, ||, !"
		}
		return "syntax error: unexpected '" + tok + "'" + where, syntaxHint
	}
	if m := syntaxMissingRE.FindStringSubmatch(msg); m != nil {
		if m[2] == "<EOF>" {
			return "syntax error: missing " + m[1] + " at the end", syntaxHint
		}
		return "syntax error: missing " + m[1] + " before '" + m[2] + "'", syntaxHint
	}
	if m := syntaxTokenRE.FindStringSubmatch(msg); m != nil {
		tok := strings.TrimSpace(m[1])
		switch {
		case strings.HasPrefix(tok, "'") || strings.HasPrefix(tok, `"`):
			return "syntax error: a string is not closed", "end the string with the quote it starts with"
		case tok == "=":
			return "syntax error: unexpected '='", "compare with ==, not ="
		}
		return "syntax error: unexpected character '" + tok + "'", syntaxHint
	}
	return "syntax error: " + strings.TrimPrefix(msg, "Syntax error: "), syntaxHint
}

func issueHint(msg string) string {
	switch {
	case strings.HasPrefix(msg, "found no matching overload"):
		return "check the operand types: JSON integers are int and other numbers double; convert with int(...) or double(...)"
	}
	return ""
}

// Eval evaluates the program over ev. The result is a CEL value; use the
// typed variants, ToGo or JSON to get Go values. An error means this event
// cannot be evaluated (a missing field, data that is not JSON, a division
// by zero); it names the expression.
func (p *Program) Eval(ev *flow.Event) (ref.Val, error) {
	if p.fast != nil {
		if v, ok := p.fast.eval(ev); ok {
			return v.toVal(), nil
		}
	}
	return p.evalCEL(ev)
}

// Compiled reports whether the program has a compiled fast path (see
// fast.go); it is for tests and benchmarks.
func (p *Program) Compiled() bool { return p.fast != nil }

// AppendFastJSON appends the JSON of the program's result over ev, as
// AppendValue would write what Eval returns, when the compiled fast path
// computes it. ok is false, with dst unchanged, when it does not: then use
// Eval, which also gives the error if there is one.
func (p *Program) AppendFastJSON(dst []byte, ev *flow.Event) ([]byte, bool) {
	if p.fast == nil {
		return dst, false
	}
	return p.fast.appendJSON(dst, ev)
}

// evalCEL evaluates the program with cel-go over the parsed payload.
func (p *Program) evalCEL(ev *flow.Event) (ref.Val, error) {
	if p.index {
		return nil, fmt.Errorf("expression %s was compiled for generated events; use EvalIndex", p.label)
	}
	if p.usesData {
		// Parse before evaluating: an activation cannot return an error,
		// and "data is not JSON" is the error the user needs to see.
		if _, err := ev.Value(); err != nil {
			return nil, fmt.Errorf("expression %s: event data: %w", p.label, err)
		}
	}
	out, _, err := p.prg.Eval((*eventVars)(ev))
	if err != nil {
		return nil, p.evalError(err)
	}
	return out, nil
}

// EvalIndex evaluates a program compiled WithIndex for the event at index i.
func (p *Program) EvalIndex(i int64) (ref.Val, error) {
	if !p.index {
		return nil, fmt.Errorf("expression %s reads an event; use Eval", p.label)
	}
	out, _, err := p.prg.Eval(&indexVars{i: types.Int(i)})
	if err != nil {
		return nil, p.evalError(err)
	}
	return out, nil
}

func (p *Program) evalError(err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "no such key"):
		return fmt.Errorf("expression %s: %w (guard an optional field with has(data.x) or data.?x.orValue(default))", p.label, err)
	case strings.HasPrefix(msg, "no such overload"):
		// The usual cause is arithmetic between a JSON int and a double;
		// CEL does not say which types met, so name both usual mixes.
		return fmt.Errorf("expression %s: %w (the operands' types do not go together: CEL does not mix int and double, convert with double(...) or int(...); nor strings and numbers, convert with string(...))", p.label, err)
	}
	return fmt.Errorf("expression %s: %w", p.label, err)
}

func (p *Program) resultError(v ref.Val, want string) error {
	return fmt.Errorf("expression %s returned %s, want %s", p.label, v.Type().TypeName(), want)
}

// EvalBool evaluates a program that must return a bool.
func (p *Program) EvalBool(ev *flow.Event) (bool, error) {
	if p.fast != nil {
		if v, ok := p.fast.eval(ev); ok && v.k == kBool {
			return v.b, nil
		}
	}
	out, err := p.Eval(ev)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, p.resultError(out, "bool")
	}
	return bool(b), nil
}

// EvalString evaluates a program that must return a string.
func (p *Program) EvalString(ev *flow.Event) (string, error) {
	if p.fast != nil {
		if v, ok := p.fast.eval(ev); ok && v.k == kString {
			return v.s, nil
		}
	}
	out, err := p.Eval(ev)
	if err != nil {
		return "", err
	}
	s, ok := out.(types.String)
	if !ok {
		return "", p.resultError(out, "string")
	}
	return string(s), nil
}

// EvalInt evaluates a program that must return an int.
func (p *Program) EvalInt(ev *flow.Event) (int64, error) {
	if p.fast != nil {
		if v, ok := p.fast.eval(ev); ok && v.k == kInt {
			return v.i, nil
		}
	}
	out, err := p.Eval(ev)
	if err != nil {
		return 0, err
	}
	i, ok := out.(types.Int)
	if !ok {
		return 0, p.resultError(out, "int")
	}
	return int64(i), nil
}

// EvalValue evaluates the program over ev and converts the result with ToGo.
func (p *Program) EvalValue(ev *flow.Event) (any, error) {
	out, err := p.Eval(ev)
	if err != nil {
		return nil, err
	}
	v, err := ToGo(out)
	if err != nil {
		return nil, fmt.Errorf("expression %s: %w", p.label, err)
	}
	return v, nil
}

// EvalMap evaluates a program that must return a map with string keys and
// converts it with ToGo. The map may share values with the event's parsed
// payload: do not modify what it holds, only the map itself.
func (p *Program) EvalMap(ev *flow.Event) (map[string]any, error) {
	out, err := p.Eval(ev)
	if err != nil {
		return nil, err
	}
	return p.toMap(out)
}

// EvalIndexMap is EvalMap for a program compiled WithIndex.
func (p *Program) EvalIndexMap(i int64) (map[string]any, error) {
	out, err := p.EvalIndex(i)
	if err != nil {
		return nil, err
	}
	return p.toMap(out)
}

// AppendMapJSON evaluates a program that must return a map over ev and
// appends the map as a JSON object to dst (see AppendValue).
func (p *Program) AppendMapJSON(dst []byte, ev *flow.Event) ([]byte, error) {
	if p.fastObj != nil {
		if out, ok := p.fastObj.appendJSON(dst, ev); ok {
			return out, nil
		}
	}
	out, err := p.Eval(ev)
	if err != nil {
		return nil, err
	}
	return p.appendMap(dst, out)
}

// AppendIndexMapJSON is AppendMapJSON for a program compiled WithIndex.
func (p *Program) AppendIndexMapJSON(dst []byte, i int64) ([]byte, error) {
	out, err := p.EvalIndex(i)
	if err != nil {
		return nil, err
	}
	return p.appendMap(dst, out)
}

func (p *Program) appendMap(dst []byte, out ref.Val) ([]byte, error) {
	if _, ok := out.(traits.Mapper); !ok {
		return nil, p.resultError(out, "map")
	}
	dst, err := AppendValue(dst, out)
	if err != nil {
		return nil, fmt.Errorf("expression %s: %w", p.label, err)
	}
	return dst, nil
}

func (p *Program) toMap(out ref.Val) (map[string]any, error) {
	v, err := ToGo(out)
	if err != nil {
		return nil, fmt.Errorf("expression %s: %w", p.label, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, p.resultError(out, "map")
	}
	return m, nil
}
