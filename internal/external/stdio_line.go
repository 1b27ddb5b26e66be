package external

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/flowctl/flowctl/internal/flow"
)

// A stdio processor writes one line per answer, most often the short form
// {"seq":N,"data":{…},"done":true}. Decoding every line with
// json.Unmarshal into a stdioLine reflects over the struct, allocates the
// pointers and copies the payload; parseStdioLine reads the members of the
// line by hand instead, once it is known to be valid JSON, and leaves to
// json.Unmarshal every line it does not read exactly as json.Unmarshal
// would: a member that is not of the expected JSON type, a key spelled
// with escapes or in another case (encoding/json matches keys
// case-insensitively), a repeated key, a seq that is not a plain integer.
// An "event" object and an "error" string are decoded with json.Unmarshal
// too (the long form and failures are the rarer lines). The result is the
// one json.Unmarshal gives (FuzzParseStdioLine checks it).

// stdioKeys are the members of a stdio line, as stdioLine reads them.
var stdioKeys = [...]string{"seq", "event", "data", "done", "error", "permanent"}

// parseStdioLine decodes line into l (which it zeroes first). An error
// means the line is not a stdio line.
func parseStdioLine(line []byte, l *stdioLine) error {
	*l = stdioLine{}
	// flow.ValidateJSON accepts a subset of what json.Valid does (strict
	// JSON: valid UTF-8, finite numbers; the same nesting bound), in a
	// fraction of its time; what it refuses goes to json.Unmarshal.
	if flow.ValidateJSON(line) == nil && parseStdioMembers(line, l) {
		return nil
	}
	return unmarshalStdioLine(line, l)
}

// unmarshalStdioLine is json.Unmarshal into a zero l. The line goes
// through a variable of its own, so that l (the caller's, usually on its
// stack) does not escape to the heap on the fast path.
func unmarshalStdioLine(line []byte, l *stdioLine) error {
	var u stdioLine
	err := json.Unmarshal(line, &u)
	*l = u
	return err
}

// parseStdioMembers reads the members of the valid JSON text line into l,
// and reports false where json.Unmarshal must decide instead.
func parseStdioMembers(line []byte, l *stdioLine) bool {
	i := flow.SkipJSONSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false // json.Unmarshal refuses it, or leaves l zero (null)
	}
	var seen [len(stdioKeys)]bool
	i = flow.SkipJSONSpace(line, i+1)
	for i < len(line) && line[i] == '"' {
		end, escaped := flow.ScanJSONString(line, i)
		if escaped || end < 0 {
			return false
		}
		key := line[i+1 : end-1]
		v := flow.SkipJSONSpace(line, flow.SkipJSONSpace(line, end)+1) // past the colon
		next := flow.SkipJSONValue(line, v)
		if next < 0 {
			return false
		}
		raw := line[v:next]
		k := stdioKey(key)
		switch {
		case k < 0:
			if !unrelatedKey(key) {
				return false
			}
		case seen[k]:
			return false
		default:
			seen[k] = true
			if !setStdioMember(l, k, raw) {
				return false
			}
		}
		i = flow.SkipJSONSpace(line, next)
		if i < len(line) && line[i] == ',' {
			i = flow.SkipJSONSpace(line, i+1)
		}
	}
	return true
}

// stdioKey returns the index of key in stdioKeys, or -1.
func stdioKey(key []byte) int {
	for k, s := range stdioKeys {
		if string(key) == s {
			return k
		}
	}
	return -1
}

// unrelatedKey reports whether json.Unmarshal surely ignores key: plain
// ASCII and no case-insensitive match of a member (non-ASCII letters may
// fold to ASCII ones: U+017F to s).
func unrelatedKey(key []byte) bool {
	for _, c := range key {
		if c >= 0x80 {
			return false
		}
	}
	for _, s := range stdioKeys {
		if strings.EqualFold(string(key), s) {
			return false
		}
	}
	return true
}

// setStdioMember sets member k from its raw JSON value, or reports false
// when the value is not the JSON type stdioLine expects.
func setStdioMember(l *stdioLine, k int, raw []byte) bool {
	null := string(raw) == "null"
	switch stdioKeys[k] {
	case "seq":
		if null {
			return true // json.Unmarshal leaves the pointer nil
		}
		for _, c := range raw {
			if c < '0' || c > '9' {
				return false // a fraction, an exponent, a sign, not a number
			}
		}
		n, err := strconv.ParseUint(string(raw), 10, 64)
		if err != nil {
			return false
		}
		l.Seq = &n
	case "event":
		if null {
			return true
		}
		if raw[0] != '{' {
			return false
		}
		l.Event = &wireEvent{}
		return json.Unmarshal(raw, l.Event) == nil
	case "data":
		// A RawMessage gets the value as written, null included.
		l.Data = append(json.RawMessage(nil), raw...)
	case "done", "permanent":
		var b bool
		switch string(raw) {
		case "true":
			b = true
		case "false":
		case "null":
			return true // json.Unmarshal leaves a bool as it is
		default:
			return false
		}
		if stdioKeys[k] == "done" {
			l.Done = b
		} else {
			l.Permanent = b
		}
	case "error":
		if null {
			return true
		}
		if raw[0] != '"' {
			return false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return false
		}
		l.Error = &s
	}
	return true
}
