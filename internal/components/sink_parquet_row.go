package components

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/flowctl/flowctl/internal/flow"
)

// The parquet and arrow sinks' schema, row conversion, journal and
// recovery.

// pqSchemaKey is the key-value metadata entry of every file that holds
// the flowctl schema, so a later run of an inferred schema goes on with
// the same columns.
const pqSchemaKey = "flowctl.schema"

// pqColumn is one column: a top-level data field or an event attribute
// (Attr set, Name "_" + Attr).
type pqColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Optional bool   `json:"optional"`
	Attr     string `json:"attr,omitempty"`
}

// pqAttrTypes are the event attributes that can be columns.
var pqAttrTypes = map[string]pqColumn{
	"id":      {Name: "_id", Type: "string", Attr: "id"},
	"type":    {Name: "_type", Type: "string", Attr: "type"},
	"source":  {Name: "_source", Type: "string", Attr: "source"},
	"subject": {Name: "_subject", Type: "string", Optional: true, Attr: "subject"},
	"time":    {Name: "_time", Type: "timestamp", Optional: true, Attr: "time"},
}

func pqNode(typ string) parquet.Node {
	switch typ {
	case "int64":
		return parquet.Int(64)
	case "double":
		return parquet.Leaf(parquet.DoubleType)
	case "bool":
		return parquet.Leaf(parquet.BooleanType)
	case "timestamp":
		return parquet.Timestamp(parquet.Nanosecond)
	case "json":
		return parquet.JSON()
	default:
		return parquet.String()
	}
}

func pqParseSchema(raw any) ([]pqColumn, error) {
	list, ok := raw.([]any)
	if !ok {
		return nil, ioFieldErr("schema", fmt.Sprintf("must be a list of columns, not %T", raw), "write it like - {name: user, type: string}")
	}
	var errs []error
	var cols []pqColumn
	seen := map[string]bool{}
	for i, x := range list {
		path := fmt.Sprintf("schema[%d]", i)
		m, ok := x.(map[string]any)
		if !ok {
			errs = append(errs, ioFieldErr(path, fmt.Sprintf("must be an object, not %T", x), "write it like {name: user, type: string}"))
			continue
		}
		c := pqColumn{Name: ioCfgString(m, "name", ""), Type: ioCfgString(m, "type", ""), Optional: ioCfgBool(m, "optional", true)}
		switch {
		case c.Name == "":
			errs = append(errs, ioFieldErr(path+".name", "is required", "name the top-level data field"))
		case strings.HasPrefix(c.Name, "_"):
			errs = append(errs, ioFieldErr(path+".name", fmt.Sprintf("%q starts with _, which names event attribute columns", c.Name), "rename the field with a processor, or choose attributes"))
		case seen[c.Name]:
			errs = append(errs, ioFieldErr(path+".name", fmt.Sprintf("column %q is declared twice", c.Name), "keep one"))
		}
		seen[c.Name] = true
		switch c.Type {
		case "string", "int64", "double", "bool", "timestamp", "json":
		default:
			errs = append(errs, ioFieldErr(path+".type", fmt.Sprintf("unknown type %q", c.Type), "use string, int64, double, bool, timestamp or json"))
		}
		cols = append(cols, c)
	}
	return cols, errors.Join(errs...)
}

// pqAttrColumns returns the attribute columns in attrs.
func pqAttrColumns(attrs []string) []pqColumn {
	var cols []pqColumn
	for _, a := range attrs {
		if c, ok := pqAttrTypes[a]; ok && !slices.ContainsFunc(cols, func(x pqColumn) bool { return x.Attr == a }) {
			cols = append(cols, c)
		}
	}
	return cols
}

// pqInfer derives the columns from the top-level fields of the batch's
// JSON objects (see the schema field's description for the rules).
func pqInfer(batch []*flow.Event, attrs []string) []pqColumn {
	kinds := map[string]byte{}
	var order []string
	for _, e := range batch {
		var m map[string]json.RawMessage
		if json.Unmarshal(e.Data, &m) != nil {
			continue
		}
		for k, v := range m {
			if strings.HasPrefix(k, "_") {
				continue
			}
			kind := pqKind(v)
			old, ok := kinds[k]
			if !ok {
				order = append(order, k)
				kinds[k] = kind
				continue
			}
			switch {
			case old == kind || kind == 'n':
			case old == 'n':
				kinds[k] = kind
			case (old == 'i' && kind == 'd') || (old == 'd' && kind == 'i'):
				kinds[k] = 'd'
			default:
				kinds[k] = 'j'
			}
		}
	}
	cols := pqAttrColumns(attrs)
	for _, k := range order {
		t := map[byte]string{'s': "string", 'i': "int64", 'd': "double", 'b': "bool"}[kinds[k]]
		if t == "" {
			t = "json"
		}
		cols = append(cols, pqColumn{Name: k, Type: t, Optional: true})
	}
	return cols
}

// pqKind classifies a JSON value: s(tring), i(nt64), d(ouble), b(ool),
// n(ull) or j(son: object, array, an integer beyond int64).
func pqKind(v json.RawMessage) byte {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return 'n'
	}
	switch v[0] {
	case '"':
		return 's'
	case 't', 'f':
		return 'b'
	case 'n':
		return 'n'
	case '{', '[':
		return 'j'
	}
	if bytes.ContainsAny(v, ".eE") {
		return 'd'
	}
	if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return 'i'
	}
	return 'j'
}

func pqDescribe(cols []pqColumn) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + " " + c.Type
		if !c.Optional {
			parts[i] += " required"
		}
	}
	return strings.Join(parts, ", ")
}

func pqEncodeSchema(cols []pqColumn) string {
	b, _ := json.Marshal(cols)
	return string(b)
}

// pqJournalHeader is a journal's first line.
type pqJournalHeader struct {
	Start   int64      `json:"start"` // position of the file's first row
	Columns []pqColumn `json:"columns"`
}

func jsonMarshalLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(b, '\n'), err
}

// ---------------------------------------------------------------------------
// Conversion.

// convert turns e into s.row and its journal line s.jline. An error says
// why the event does not fit the schema.
func (s *tableSink) convert(e *flow.Event) (parquet.Row, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &m); err != nil || m == nil {
		return nil, fmt.Errorf("data is not a JSON object (the %s sink writes one row per object): %.80q", s.typ, e.Data)
	}
	for k := range m {
		if i, ok := s.byName[k]; !ok || s.cols[i].Attr != "" {
			if s.dropUnknown {
				continue
			}
			return nil, fmt.Errorf("field %q has no column in the schema (%s) — declare it in schema, or set unknown_fields: drop", k, pqDescribe(s.cols))
		}
	}
	row := s.row[:0]
	j := append(s.jline[:0], '[')
	for i, c := range s.cols {
		if i > 0 {
			j = append(j, ',')
		}
		var v parquet.Value
		var null bool
		var err error
		if c.Attr != "" {
			v, null, j = pqAttrValue(e, c.Attr, j)
		} else {
			v, null, j, err = pqDataValue(c, m[c.Name], j)
			if err != nil {
				return nil, err
			}
		}
		if null {
			if !c.Optional {
				return nil, fmt.Errorf("required field %q is missing or null", c.Name)
			}
			row = append(row, parquet.NullValue().Level(0, 0, i))
			continue
		}
		def := 0
		if c.Optional {
			def = 1
		}
		row = append(row, v.Level(0, def, i))
	}
	s.row, s.jline = row, append(j, ']', '\n')
	return row, nil
}

func pqAttrValue(e *flow.Event, attr string, j []byte) (parquet.Value, bool, []byte) {
	var str string
	switch attr {
	case "id":
		str = e.ID
	case "type":
		str = e.Type
	case "source":
		str = e.Source
	case "subject":
		if e.Subject == "" {
			return parquet.Value{}, true, append(j, "null"...)
		}
		str = e.Subject
	case "time":
		if e.Time.IsZero() {
			return parquet.Value{}, true, append(j, "null"...)
		}
		ns := e.Time.UnixNano()
		return parquet.Int64Value(ns), false, strconv.AppendInt(j, ns, 10)
	}
	return parquet.ByteArrayValue([]byte(str)), false, flow.AppendJSONString(j, str)
}

// pqDataValue converts a field's JSON value to the column's type when
// that loses nothing, and appends its journal encoding to j.
func pqDataValue(c pqColumn, raw json.RawMessage, j []byte) (parquet.Value, bool, []byte, error) {
	kind := pqKind(raw)
	if kind == 'n' {
		return parquet.Value{}, true, append(j, "null"...), nil
	}
	raw = bytes.TrimSpace(raw)
	bad := func(what string) error {
		return fmt.Errorf("field %q: %.60s is not %s (column type %s)", c.Name, raw, what, c.Type)
	}
	switch c.Type {
	case "string":
		if kind != 's' {
			return parquet.Value{}, false, j, bad("a string")
		}
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return parquet.Value{}, false, j, bad("a valid string")
		}
		return parquet.ByteArrayValue([]byte(str)), false, flow.AppendJSONString(j, str), nil
	case "int64":
		if kind == 'i' {
			n, _ := strconv.ParseInt(string(raw), 10, 64)
			return parquet.Int64Value(n), false, strconv.AppendInt(j, n, 10), nil
		}
		if kind == 'd' {
			f, err := strconv.ParseFloat(string(raw), 64)
			if err == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
				return parquet.Int64Value(int64(f)), false, strconv.AppendInt(j, int64(f), 10), nil
			}
		}
		return parquet.Value{}, false, j, bad("an integer that fits int64")
	case "double":
		var f float64
		switch kind {
		case 'i':
			n, _ := strconv.ParseInt(string(raw), 10, 64)
			f = float64(n)
			if n > 1<<53 || n < -(1<<53) {
				return parquet.Value{}, false, j, bad("a number a double holds exactly")
			}
		case 'd':
			var err error
			f, err = strconv.ParseFloat(string(raw), 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return parquet.Value{}, false, j, bad("a finite double")
			}
		default:
			return parquet.Value{}, false, j, bad("a number")
		}
		return parquet.DoubleValue(f), false, strconv.AppendFloat(j, f, 'g', -1, 64), nil
	case "bool":
		if kind != 'b' {
			return parquet.Value{}, false, j, bad("true or false")
		}
		b := raw[0] == 't'
		return parquet.BooleanValue(b), false, strconv.AppendBool(j, b), nil
	case "timestamp":
		var str string
		if kind != 's' || json.Unmarshal(raw, &str) != nil {
			return parquet.Value{}, false, j, bad("an RFC 3339 timestamp string")
		}
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return parquet.Value{}, false, j, bad("an RFC 3339 timestamp string")
		}
		ns := t.UnixNano()
		return parquet.Int64Value(ns), false, strconv.AppendInt(j, ns, 10), nil
	default: // json
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return parquet.Value{}, false, j, bad("valid JSON")
		}
		return parquet.ByteArrayValue(b.Bytes()), false, flow.AppendJSONBytes(j, b.Bytes()), nil
	}
}

// rowFromJournal rebuilds a row from a journal line.
func (s *tableSink) rowFromJournal(line []byte) (parquet.Row, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var vals []any
	if err := d.Decode(&vals); err != nil {
		return nil, err
	}
	if len(vals) != len(s.cols) {
		return nil, fmt.Errorf("%d values for %d columns", len(vals), len(s.cols))
	}
	row := s.row[:0]
	for i, c := range s.cols {
		x := vals[i]
		if x == nil {
			row = append(row, parquet.NullValue().Level(0, 0, i))
			continue
		}
		var v parquet.Value
		var err error
		switch c.Type {
		case "int64", "timestamp":
			n, ok := x.(json.Number)
			var k int64
			if k, err = n.Int64(); !ok {
				err = fmt.Errorf("column %s: %v is not a number", c.Name, x)
			}
			v = parquet.Int64Value(k)
		case "double":
			n, ok := x.(json.Number)
			var f float64
			if f, err = n.Float64(); !ok {
				err = fmt.Errorf("column %s: %v is not a number", c.Name, x)
			}
			v = parquet.DoubleValue(f)
		case "bool":
			b, ok := x.(bool)
			if !ok {
				err = fmt.Errorf("column %s: %v is not a bool", c.Name, x)
			}
			v = parquet.BooleanValue(b)
		default:
			str, ok := x.(string)
			if !ok {
				err = fmt.Errorf("column %s: %v is not a string", c.Name, x)
			}
			v = parquet.ByteArrayValue([]byte(str))
		}
		if err != nil {
			return nil, err
		}
		def := 0
		if c.Optional {
			def = 1
		}
		row = append(row, v.Level(0, def, i))
	}
	s.row = row
	return row, nil
}

// ---------------------------------------------------------------------------
// Recovery.

// pqName parses PREFIX-NNNNNN.EXT, .PREFIX-NNNNNN.EXT.tmp and the
// journal .PREFIX-NNNNNN.journal (see journalSuffix); kind is 'f', 't' or
// 'j'.
func (s *tableSink) pqName(name string) (seq int, kind byte) {
	rest, ok := strings.CutPrefix(name, s.prefix+"-")
	kind = 'f'
	if !ok {
		if rest, ok = strings.CutPrefix(name, "."+s.prefix+"-"); !ok {
			return 0, 0
		}
		kind = 0
	}
	var num string
	switch {
	case kind == 'f':
		num, ok = strings.CutSuffix(rest, "."+s.ext)
	default:
		if num, ok = strings.CutSuffix(rest, "."+s.ext+".tmp"); ok {
			kind = 't'
		} else if num, ok = strings.CutSuffix(rest, s.journalSuffix()); ok {
			kind = 'j'
		}
	}
	if !ok || len(num) < 6 {
		return 0, 0
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, 0
	}
	return n, kind
}

// recover scans the directory: it counts the rows of the finished files,
// removes unfinished temporary files (their rows are in the journal),
// rebuilds the unfinished file from its journal up to the committed
// position and sets what to skip of the replayed events.
func (s *tableSink) recover() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	finished := map[int]bool{}
	journals := map[int]bool{}
	var tmps []string
	last := 0
	var rows int64
	var lastSchema string
	idx := s.readRowIndex()
	for _, de := range ents {
		seq, kind := s.pqName(de.Name())
		switch kind {
		case 'f':
			finished[seq] = true
			fi, _ := de.Info()
			n, sch, err := s.finishedRows(s.finalName(seq), fi, idx)
			if err != nil {
				return fmt.Errorf("finished file %s is unreadable: %w — move it out of %s", s.finalName(seq), err, s.dir)
			}
			rows += n
			if seq >= last {
				last, lastSchema = seq, sch
			}
		case 't':
			tmps = append(tmps, filepath.Join(s.dir, de.Name()))
		case 'j':
			journals[seq] = true
		}
	}
	s.seq = last + 1
	for _, t := range tmps {
		// An unfinished file has no footer; its rows are in its journal.
		s.log.Info("removing an unfinished "+s.kind()+" file of an earlier run (its rows are in its journal, or were never acknowledged)", "path", t)
		if err := os.Remove(t); err != nil {
			return err
		}
	}
	var hdr pqJournalHeader
	var lines [][]byte
	var keepBytes int64
	for seq := range journals {
		name := s.journalName(seq)
		switch {
		case finished[seq]:
			// Finished and renamed; the run stopped before removing it.
			if err := os.Remove(name); err != nil {
				return err
			}
		case seq != s.seq:
			s.log.Warn("leaving a journal that belongs to no file being written", "path", name)
		case s.resume < 0:
			s.log.Info("discarding the journal of an unfinished file: this output has no checkpoint, so its sources start over", "path", name)
			if err := os.Remove(name); err != nil {
				return err
			}
		default:
			hdr, lines, err = pqReadJournal(name)
			if errors.Is(err, errPQNoHeader) {
				// Created but never synced: it holds nothing a checkpoint
				// counts on (if one did, the row count check below fails).
				hdr, lines = pqJournalHeader{}, nil
				if err := os.Remove(name); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("journal %s: %w", name, err)
			}
			if hdr.Start != rows {
				return fmt.Errorf("journal %s starts at row %d but the finished files hold %d rows: files were changed outside flowctl — put them back, or start over with flowctl run --from-start", name, hdr.Start, rows)
			}
		}
	}
	switch {
	case s.declared != nil:
		cols := append(pqAttrColumns(s.attrs), s.declared...)
		if err := s.setSchema(cols); err != nil {
			return err
		}
		if hdr.Columns != nil && pqEncodeSchema(hdr.Columns) != pqEncodeSchema(s.cols) {
			return fmt.Errorf("the unfinished file %s was written with other columns (%s) than the schema now declared (%s): finish it with the old schema first, or start over with flowctl run --from-start", s.journalName(s.seq), pqDescribe(hdr.Columns), pqDescribe(s.cols))
		}
	case hdr.Columns != nil:
		if err := s.setSchema(hdr.Columns); err != nil {
			return err
		}
	case lastSchema != "":
		var cols []pqColumn
		if err := json.Unmarshal([]byte(lastSchema), &cols); err != nil {
			return fmt.Errorf("%s: bad %s metadata: %w", s.finalName(last), pqSchemaKey, err)
		}
		if err := s.setSchema(cols); err != nil {
			return err
		}
		s.log.Info(s.kind()+" schema taken from the last file", "path", s.finalName(last), "columns", pqDescribe(s.cols))
	}
	s.pos.Store(rows)
	if s.resume < 0 {
		return nil
	}
	keep := len(lines)
	if !s.keepTail {
		keep = int(min(max(s.resume-rows, 0), int64(len(lines))))
	}
	if lines != nil {
		for _, l := range lines[:keep] {
			keepBytes += int64(len(l))
		}
		if err := s.restore(hdr, lines[:keep], keepBytes); err != nil {
			return err
		}
		if dropped := len(lines) - keep; dropped > 0 {
			s.log.Info("dropped rows written after the last checkpoint; their events are sent again", "rows", dropped)
		}
	}
	pos := s.pos.Load()
	switch {
	case pos < s.resume:
		return fmt.Errorf("%s holds %d rows, fewer than the %d committed at the last checkpoint: files were removed or changed outside flowctl — put them back, or start over with flowctl run --from-start (or flowctl state reset)", s.dir, pos, s.resume)
	case pos > s.resume && !s.keepTail:
		s.skip = pos - s.resume
	}
	return nil
}

// restore cuts the journal after the kept rows and writes them to a new
// temporary file; the journal goes on being appended to.
func (s *tableSink) restore(hdr pqJournalHeader, lines [][]byte, keepBytes int64) error {
	name := s.journalName(s.seq)
	first, err := pqJournalHeaderLen(name)
	if err != nil {
		return err
	}
	if err := os.Truncate(name, first+keepBytes); err != nil {
		return fmt.Errorf("cut journal %s: %w", name, err)
	}
	if len(lines) == 0 {
		return os.Remove(name)
	}
	if err := s.start(hdr.Start, true); err != nil {
		return err
	}
	for i, l := range lines {
		row, err := s.rowFromJournal(l)
		if err != nil {
			return fmt.Errorf("journal %s line %d: %w", name, i+2, err)
		}
		s.jline = append(s.jline[:0], l...)
		if err := s.writeRow(row); err != nil {
			return err
		}
	}
	if s.cur != nil {
		s.cur.restoring = false
	}
	s.log.Info("rebuilt the unfinished "+s.kind()+" file from its journal", "rows", len(lines))
	return nil
}

// pqJournalHeaderLen is the length of a journal's first line, newline
// included.
func pqJournalHeaderLen(name string) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	l, err := bufio.NewReader(f).ReadBytes('\n')
	return int64(len(l)), err
}

// errPQNoHeader: a journal without a complete first line.
var errPQNoHeader = errors.New("no complete header line")

// pqReadJournal reads a journal: its header and its complete row lines
// (newline included); a torn last line is left out.
func pqReadJournal(name string) (pqJournalHeader, [][]byte, error) {
	var hdr pqJournalHeader
	f, err := os.Open(name)
	if err != nil {
		return hdr, nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	l, err := r.ReadBytes('\n')
	if err == io.EOF {
		return hdr, nil, errPQNoHeader
	}
	if err != nil {
		return hdr, nil, err
	}
	if err := json.Unmarshal(l, &hdr); err != nil || hdr.Columns == nil {
		return hdr, nil, fmt.Errorf("bad header: %v", err)
	}
	var lines [][]byte
	for {
		l, err := r.ReadBytes('\n')
		if err == io.EOF {
			return hdr, lines, nil
		}
		if err != nil {
			return hdr, nil, err
		}
		lines = append(lines, l)
	}
}

// finishedRows returns a finished file's row count and flowctl schema:
// from the Parquet footer, from the Arrow sink's index (rowIndex) when it
// lists the file with its present size and time, else by reading the
// whole Arrow file.
func (s *tableSink) finishedRows(name string, fi os.FileInfo, idx map[string]rowIndexEntry) (int64, string, error) {
	if s.ext == "parquet" {
		return pqFooter(name)
	}
	if e, ok := idx[filepath.Base(name)]; ok && fi != nil && e.Size == fi.Size() && e.ModTime == fi.ModTime().UnixNano() {
		return e.Rows, e.Schema, nil
	}
	return arrowRows(name, s.ext == "arrows")
}

// The Arrow IPC formats keep no row count, so counting a finished file's
// rows means reading it all. The arrow sink therefore keeps an index of
// its finished files beside them, .PREFIX.EXT.rows: one JSON line per
// file, appended (and fsynced) once the file is in place. It only saves
// reading: a file it does not list, or lists with another size or
// modification time (replaced, copied back), is read as before, and a
// torn last line is ignored. Parquet files carry their row count in the
// footer and need no index.
type rowIndexEntry struct {
	File    string `json:"file"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Rows    int64  `json:"rows"`
	Schema  string `json:"schema"`
}

func (s *tableSink) rowIndexName() string {
	return filepath.Join(s.dir, "."+s.prefix+"."+s.ext+".rows")
}

// readRowIndex reads the index; a missing file is an empty index, and a
// line that does not parse (a torn write) is skipped.
func (s *tableSink) readRowIndex() map[string]rowIndexEntry {
	if s.ext == "parquet" {
		return nil
	}
	b, err := os.ReadFile(s.rowIndexName())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot read the index of finished files; counting their rows by reading them", "path", s.rowIndexName(), "error", err)
		}
		return nil
	}
	idx := map[string]rowIndexEntry{}
	for l := range bytes.Lines(b) {
		var e rowIndexEntry
		if json.Unmarshal(l, &e) == nil && e.File != "" {
			idx[e.File] = e
		}
	}
	return idx
}

// indexFinished appends a finished file to the index. A failure costs a
// later resume a read of the file, never data, so it is logged, not
// returned.
func (s *tableSink) indexFinished(final string, rows int64) {
	if s.ext == "parquet" {
		return
	}
	err := func() error {
		fi, err := os.Stat(final)
		if err != nil {
			return err
		}
		l, err := json.Marshal(rowIndexEntry{File: filepath.Base(final), Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), Rows: rows, Schema: pqEncodeSchema(s.cols)})
		if err != nil {
			return err
		}
		f, err := os.OpenFile(s.rowIndexName(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		_, err = f.Write(append(l, '\n'))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}()
	if err != nil {
		s.log.Warn("cannot add a finished file to the index; a resumed run will read it to count its rows", "path", s.rowIndexName(), "file", final, "error", err)
	}
}

// pqFooter returns a finished Parquet file's row count and flowctl schema.
func pqFooter(name string) (int64, string, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, "", err
	}
	sch, _ := pf.Lookup(pqSchemaKey)
	return pf.NumRows(), sch, nil
}
