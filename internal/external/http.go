package external

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/flowctl/flowctl/internal/drivers/process"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// HTTPWindow is how many requests may be in flight to one http component.
const HTTPWindow = 4

// httpProtocol is `protocol: http`: flowctl POSTs {"events":[...]} and the
// component answers {"results":[...]} (docs/protocols.md).
type httpProtocol struct{}

// HTTP is the http protocol.
var HTTP Protocol = httpProtocol{}

func init() { RegisterProtocol(HTTP) }

func (httpProtocol) Name() string { return "http" }

// Launch gives the child PORT=127.0.0.1:<free port>, the address it must
// listen on.
func (httpProtocol) Launch(_ *Runtime, c *spec.Component) (Launch, error) {
	if c.Role == flow.RoleSource {
		return Launch{}, fmt.Errorf("source %q: protocol http carries processors and sinks; a source speaks stdio or grpc", c.Name)
	}
	port, err := process.FreePort("127.0.0.1")
	if err != nil {
		return Launch{}, err
	}
	return Launch{Env: map[string]string{"PORT": net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}}, nil
}

// Ready waits until a started component answers GET /health (any HTTP
// status counts: it listens), or at once for a remote url.
func (httpProtocol) Ready(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error) {
	c := inst.Component
	if c.Role == flow.RoleSource {
		return Conns{}, fmt.Errorf("source %q: protocol http carries processors and sinks; a source speaks stdio or grpc", c.Name)
	}
	timeout, err := answerTimeout(c)
	if err != nil {
		return Conns{}, err
	}
	conn := &HTTPConn{
		client: &http.Client{Timeout: timeout},
		window: make(chan struct{}, HTTPWindow),
	}
	if inst.Env == nil { // remote: flowctl started nothing
		if c.URL == "" {
			return Conns{}, fmt.Errorf("component %q: protocol http needs a command to start or a url", c.Name)
		}
		conn.url, conn.remote = c.URL, true
	} else {
		addr := inst.Env["PORT"]
		conn.url, conn.token = "http://"+addr+"/", inst.Env[EnvStreamToken]
		if err := waitHTTP(ctx, "http://"+addr+"/health", inst.Exited); err != nil {
			return Conns{}, fmt.Errorf("http component %q at %s: %w", c.Name, addr, err)
		}
	}
	if c.Role == flow.RoleSink {
		return Conns{Sink: httpSink{conn}}, nil
	}
	return Conns{Processor: conn}, nil
}

// waitHTTP polls url until it answers, ctx ends or exited closes.
func waitHTTP(ctx context.Context, url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	delay := 10 * time.Millisecond
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("not answering GET /health: %w (last error: %v)", ctx.Err(), err)
		case <-exited:
			t.Stop()
			return errors.New("the process exited before it answered GET /health")
		case <-t.C:
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// HTTPConn is a ProcessorConn POSTing batches to an http component.
type HTTPConn struct {
	url    string
	remote bool
	// token, unless empty, goes with every request as `Authorization:
	// Bearer <token>` (the component's EnvStreamToken).
	token  string
	client *http.Client
	window chan struct{}
}

// NewHTTPConn returns a conn POSTing to url, each request bounded by
// timeout. A remote conn reports transport failures as failures of the
// batch's events (nothing to restart); otherwise they break the conn.
func NewHTTPConn(url string, timeout time.Duration, remote bool) *HTTPConn {
	return &HTTPConn{url: url, remote: remote, client: &http.Client{Timeout: timeout}, window: make(chan struct{}, HTTPWindow)}
}

type httpResponse struct {
	Results []struct {
		Events    []*wireEvent `json:"events"`
		Error     *string      `json:"error"`
		Permanent bool         `json:"permanent"`
	} `json:"results"`
}

// Process implements ProcessorConn.
func (c *HTTPConn) Process(ctx context.Context, batch []*flow.Event) (Result, error) {
	return c.post(ctx, batch, false)
}

// post sends batch; for a sink an answer without results means every
// event was written.
func (c *HTTPConn) post(ctx context.Context, batch []*flow.Event, sink bool) (Result, error) {
	if len(batch) == 0 {
		return Result{Outputs: [][]*flow.Event{}}, nil
	}
	select {
	case c.window <- struct{}{}:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	defer func() { <-c.window }()

	body := make([]byte, 0, 64*len(batch))
	body = append(body, `{"events":[`...)
	for i, ev := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = appendEvent(body, ev)
	}
	body = append(body, "]}"...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("http: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: %w", ErrHung, err)
		}
		if c.remote {
			return failAll(len(batch), fmt.Errorf("POST %s: %w", c.url, err)), nil
		}
		return Result{}, fmt.Errorf("http: POST %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		if c.remote {
			return failAll(len(batch), fmt.Errorf("read the answer of %s: %w", c.url, err)), nil
		}
		return Result{}, fmt.Errorf("http: read the answer of %s: %w", c.url, err)
	}
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("%s answered %s: %s", c.url, resp.Status, truncate(data, 300))
		if resp.StatusCode/100 == 4 {
			err = fmt.Errorf("%w: %w", ErrPermanent, err)
		}
		return failAll(len(batch), err), nil
	}
	var hr httpResponse
	if sink && len(bytes.TrimSpace(data)) == 0 {
		return Result{Outputs: make([][]*flow.Event, len(batch))}, nil
	}
	if err := json.Unmarshal(data, &hr); err != nil {
		return failAll(len(batch), fmt.Errorf("%w: %s answered invalid JSON: %w", ErrPermanent, c.url, err)), nil
	}
	if sink && len(hr.Results) == 0 {
		return Result{Outputs: make([][]*flow.Event, len(batch))}, nil
	}
	if len(hr.Results) != len(batch) {
		return failAll(len(batch), fmt.Errorf("%w: %s answered %d results for %d events", ErrPermanent, c.url, len(hr.Results), len(batch))), nil
	}
	res := Result{Outputs: make([][]*flow.Event, len(batch))}
	for i, r := range hr.Results {
		if r.Error != nil {
			err := errors.New(*r.Error)
			if r.Permanent {
				err = fmt.Errorf("%w: %w", ErrPermanent, err)
			}
			if res.Failures == nil {
				res.Failures = map[int]error{}
			}
			res.Failures[i] = err
			continue
		}
		for _, w := range r.Events {
			if w == nil {
				continue
			}
			ev, err := w.toEvent(batch[i])
			if err != nil {
				return failAll(len(batch), fmt.Errorf("%w: result %d: %w", ErrPermanent, i, err)), nil
			}
			res.Outputs[i] = append(res.Outputs[i], ev)
		}
	}
	return res, nil
}

func failAll(n int, err error) Result {
	res := Result{Outputs: make([][]*flow.Event, n), Failures: make(map[int]error, n)}
	for i := range n {
		res.Failures[i] = err
	}
	return res
}

// Close releases idle connections.
func (c *HTTPConn) Close() error {
	c.client.CloseIdleConnections()
	return nil
}

// httpSink is a SinkConn over an HTTPConn: results are optional, outputs
// ignored.
type httpSink struct{ c *HTTPConn }

func (s httpSink) Write(ctx context.Context, batch []*flow.Event) (map[int]error, error) {
	res, err := s.c.post(ctx, batch, true)
	return res.Failures, err
}

func (s httpSink) Close() error { return s.c.Close() }

var (
	_ ProcessorConn = (*HTTPConn)(nil)
	_ SinkConn      = httpSink{}
)
