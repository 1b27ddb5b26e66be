package tap

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

// Path is where Handler serves: GET Path?point=NAME[:in|:out]&types=T,U
// &where=CEL&limit=N streams newline-delimited JSON Records. point may be
// repeated; none watches every source's and processor's output.
const Path = "/v1/tap"

// Record is one line of a tap stream. Exactly one field is set: Watching
// first (the subscription is in place: what crosses the point from now on
// is seen), then Events, Dropped notices (the running total, at most once
// a second, when it grew), and End when the stream stops by itself: End
// is EndLimit after Limit events, EndRun when the run is over.
type Record struct {
	Watching string `json:"watching,omitempty"`
	Event    *Event `json:"event,omitempty"`
	Dropped  int64  `json:"dropped,omitempty"`
	End      string `json:"end,omitempty"`
}

// Why a stream ended by itself (Record.End).
const (
	// EndLimit: the request's limit of events was sent.
	EndLimit = "limit"
	// EndRun: the run ended (Hub.Close); every event it published to
	// the stream was sent before.
	EndRun = "run ended"
)

// Event is an event as a tap shows it: its attributes (CloudEvents
// names) and data, as JSON when it is JSON, else as a string.
type Event struct {
	Point           string            `json:"point"`
	ID              string            `json:"id"`
	Source          string            `json:"source,omitempty"`
	Type            string            `json:"type,omitempty"`
	Subject         string            `json:"subject,omitempty"`
	Time            *time.Time        `json:"time,omitempty"`
	DataContentType string            `json:"datacontenttype,omitempty"`
	Data            json.RawMessage   `json:"data,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// NewEvent renders ev as seen at p.
func NewEvent(p Point, ev *flow.Event) *Event {
	out := &Event{Point: p.String(), ID: ev.ID, Source: ev.Source, Type: ev.Type, Subject: ev.Subject,
		DataContentType: ev.DataContentType, Metadata: ev.Metadata}
	if !ev.Time.IsZero() {
		t := ev.Time
		out.Time = &t
	}
	switch {
	case len(ev.Data) == 0:
	case json.Valid(ev.Data):
		out.Data = json.RawMessage(ev.Data)
	default:
		out.Data, _ = json.Marshal(string(ev.Data))
	}
	return out
}

// Request is what a tap asks for.
type Request struct {
	// Points are "NAME", "NAME:out" or "NAME:in". A bare NAME is the
	// component's output, or a sink's input (a sink has no output). None
	// watches the output of every source and processor.
	Points []string
	// Types keeps the events of these types (none: all).
	Types []string
	// Where keeps the events for which this CEL condition holds.
	Where string
	// Limit ends the stream after this many events (0: no limit).
	Limit int
}

// Query encodes r as Handler's query string.
func (r Request) Query() url.Values {
	q := url.Values{}
	for _, p := range r.Points {
		q.Add("point", p)
	}
	if len(r.Types) > 0 {
		q.Set("types", strings.Join(r.Types, ","))
	}
	if r.Where != "" {
		q.Set("where", r.Where)
	}
	if r.Limit > 0 {
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	return q
}

// Components lists a running pipeline's components and roles; it is
// asked on every request, so components added by a reload are found.
type Components func() map[string]flow.Role

// ResolvePoint checks spec ("NAME[:in|:out]") against the components.
func ResolvePoint(spec string, comps map[string]flow.Role) (Point, error) {
	name, side, hasSide := strings.Cut(spec, ":")
	if name == "" {
		return Point{}, errors.New("name the component to tap: NAME, NAME:out or NAME:in")
	}
	role, ok := comps[name]
	if !ok {
		names := make([]string, 0, len(comps))
		for n := range comps {
			names = append(names, n)
		}
		sort.Strings(names)
		return Point{}, fmt.Errorf("no component %q in the pipeline: its components are %s", name, strings.Join(names, ", "))
	}
	p := Point{Component: name}
	switch {
	case !hasSide:
		p.In = role == flow.RoleSink
	case side == "in":
		if role == flow.RoleSource {
			return Point{}, fmt.Errorf("source %q has no input: tap %s or %s:out", name, name, name)
		}
		p.In = true
	case side == "out":
		if role == flow.RoleSink {
			return Point{}, fmt.Errorf("sink %q has no output: tap %s:in", name, name)
		}
	default:
		return Point{}, fmt.Errorf("%q: after the component name use :out (what it emits) or :in (what it is handed)", spec)
	}
	return p, nil
}

// ResolvePoints resolves specs (see Request.Points); none is the output
// of every source and processor, in name order.
func ResolvePoints(specs []string, comps map[string]flow.Role) ([]Point, error) {
	var out []Point
	if len(specs) == 0 {
		for name, role := range comps {
			if role != flow.RoleSink {
				out = append(out, Point{Component: name})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
		if len(out) == 0 {
			return nil, errors.New("the pipeline has no source or processor to tap")
		}
		return out, nil
	}
	for _, s := range specs {
		p, err := ResolvePoint(s, comps)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Handler serves tap streams of h's points.
func Handler(h *Hub, comps Components) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			httpError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		q := r.URL.Query()
		points, err := ResolvePoints(q["point"], comps())
		if err != nil {
			httpError(w, http.StatusNotFound, err.Error())
			return
		}
		var types []string
		if t := q.Get("types"); t != "" {
			types = strings.Split(t, ",")
		}
		var where *expr.Program
		if src := q.Get("where"); src != "" {
			if where, err = expr.Compile(src, expr.Bool); err != nil {
				httpError(w, http.StatusBadRequest, "--where: "+err.Error())
				return
			}
		}
		limit := 0
		if l := q.Get("limit"); l != "" {
			if limit, err = strconv.Atoi(l); err != nil || limit < 0 {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: give a whole number ≥ 0", l))
				return
			}
		}
		serve(r.Context(), w, h, points, types, where, limit)
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(append(b, '\n'))
}

// serve streams what crosses points until ctx ends or limit events were
// sent.
func serve(ctx context.Context, w http.ResponseWriter, h *Hub, points []Point, types []string, where *expr.Program, limit int) {
	s := h.Subscribe(points, DefaultBuffer)
	defer h.Unsubscribe(s)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(rec Record) bool {
		if err := enc.Encode(rec); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	names := make([]string, len(points))
	for i, p := range points {
		names[i] = p.String()
	}
	if !send(Record{Watching: strings.Join(names, ",")}) {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var reported int64
	sent := 0
	// item sends it when it passes the filters; false when the stream is
	// over (the client left, or the limit was reached and said).
	item := func(it Item) bool {
		ev := it.Event
		if len(types) > 0 && !slices.Contains(types, ev.Type) {
			return true
		}
		if where != nil {
			if ok, err := where.EvalBool(ev); err != nil || !ok {
				return true
			}
		}
		if !send(Record{Event: NewEvent(it.Point, ev)}) {
			return false
		}
		sent++
		if limit > 0 && sent >= limit {
			if d := s.Dropped(); d > reported {
				send(Record{Dropped: d})
			}
			send(Record{End: EndLimit})
			return false
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if d := s.Dropped(); d > reported {
				reported = d
				if !send(Record{Dropped: d}) {
					return
				}
			}
		case it := <-s.C:
			if !item(it) {
				return
			}
		case <-h.Ended():
			// Nothing more comes: send what is queued, then say why the
			// stream ends, so that the client is not cut off mid-stream.
			for {
				select {
				case it := <-s.C:
					if !item(it) {
						return
					}
					continue
				default:
				}
				break
			}
			if d := s.Dropped(); d > reported {
				send(Record{Dropped: d})
			}
			send(Record{End: EndRun})
			return
		}
	}
}

// UnixClient is an HTTP client that reaches the server on the Unix socket
// path whatever a URL's host (a run's socket: see flowctl run --socket).
func UnixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// Watch requests a tap stream from base (the URL of a server serving
// Handler at Path, e.g. "http://run") through c and calls fn for every
// record until the stream ends, fn returns an error, or ctx is done.
func Watch(ctx context.Context, c *http.Client, base string, r Request, fn func(Record) error) error {
	u := strings.TrimSuffix(base, "/") + Path + "?" + r.Query().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("tap: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("tap: a line that is not a record: %v", err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
