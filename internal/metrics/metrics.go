package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowctl/flowctl/internal/engine"
)

// StatsSource is what the collector reads: an *engine.Engine.
type StatsSource interface {
	Stats() engine.Stats
}

// Collector is a prometheus.Collector over an engine's statistics.
type Collector struct {
	src      StatsSource
	pipeline string

	eventsIn, eventsOut, errors, dropped, deadLettered, filtered, retries, unrouted *prometheus.Desc
	queueDepth, queueCapacity, latency, pending, up                                 *prometheus.Desc
	processing, endToEnd                                                            *prometheus.Desc
	health                                                                          *prometheus.Desc
}

// healthStates are the values of flowctl_component_health's state label.
var healthStates = []engine.Health{engine.HealthHealthy, engine.HealthDegraded, engine.HealthUnhealthy}

// NewCollector returns a collector of src's statistics, labelled with the
// pipeline's name.
func NewCollector(pipeline string, src StatsSource) *Collector {
	labels := []string{"component", "role"}
	constLabels := prometheus.Labels{"pipeline": pipeline}
	d := func(name, help string, l []string) *prometheus.Desc {
		return prometheus.NewDesc("flowctl_"+name, help, l, constLabels)
	}
	return &Collector{
		src: src, pipeline: pipeline,
		eventsIn:      d("events_in_total", "Events a component received.", labels),
		eventsOut:     d("events_out_total", "Events a component emitted (a sink: wrote).", labels),
		errors:        d("errors_total", "Failed attempts to process or write an event.", labels),
		dropped:       d("events_dropped_total", "Events dropped by on_error.", labels),
		deadLettered:  d("events_dead_lettered_total", "Events sent to the dead-letter sink.", labels),
		filtered:      d("events_filtered_total", "Events a processor emitted nothing for.", labels),
		retries:       d("retries_total", "Events tried again under on_error retry.", labels),
		unrouted:      d("events_unrouted_total", "Events a component emitted that no input selected.", labels),
		queueDepth:    d("queue_depth", "Events waiting in a component's input queue.", labels),
		queueCapacity: d("queue_capacity", "Capacity of a component's input queue, in events.", labels),
		latency:       d("batch_latency_seconds", "Age of a batch (since its source emitted it) when a component finished it.", labels),
		processing:    d("processing_seconds", "Time a processor or sink spent on a batch: this hop alone, without the queue before it.", labels),
		endToEnd:      d("end_to_end_seconds", "Time from a source emitting a batch to its acknowledgement: every sink wrote all that derived from it.", labels),
		pending:       d("pending_batches", "Source batches not yet acknowledged.", nil),
		up:            d("ready", "1 while every component is open and the run has not ended.", nil),
		health: d("component_health", "1 for the component's current state: healthy, degraded (a sink retrying a failed write) or unhealthy (its waits between attempts reached max_backoff); the reason is in the log and the run summary.",
			append(labels, "state")),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.eventsIn, c.eventsOut, c.errors, c.dropped, c.deadLettered,
		c.filtered, c.retries, c.unrouted, c.queueDepth, c.queueCapacity, c.latency, c.processing, c.endToEnd, c.pending, c.up, c.health} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, cs := range s.Components {
		role := string(cs.Role)
		if cs.DeadLetter {
			role = "dead_letter"
		}
		l := []string{cs.Name, role}
		counter(c.eventsIn, cs.In, l...)
		counter(c.eventsOut, cs.Out, l...)
		counter(c.errors, cs.Errors, l...)
		counter(c.dropped, cs.Dropped, l...)
		counter(c.deadLettered, cs.DeadLettered, l...)
		counter(c.filtered, cs.Filtered, l...)
		counter(c.retries, cs.Retries, l...)
		counter(c.unrouted, cs.Unrouted, l...)
		for _, st := range healthStates {
			v := 0.0
			if cs.Health == st || (cs.Health == "" && st == engine.HealthHealthy) {
				v = 1
			}
			gauge(c.health, v, cs.Name, role, string(st))
		}
		if cs.QueueCapacity > 0 {
			gauge(c.queueDepth, float64(cs.QueueDepth), l...)
			gauge(c.queueCapacity, float64(cs.QueueCapacity), l...)
		}
		if cs.Role != "source" {
			buckets := make(map[float64]uint64, len(engine.LatencyBuckets))
			var cum uint64
			for i, ub := range engine.LatencyBuckets {
				cum += uint64(cs.LatencyBucketHits[i])
				buckets[ub.Seconds()] = cum
			}
			ch <- prometheus.MustNewConstHistogram(c.latency, uint64(cs.Batches), cs.LatencySum.Seconds(), buckets, l...)
			ch <- constHistogram(c.processing, cs.Processing, l)
		} else {
			ch <- constHistogram(c.endToEnd, cs.EndToEnd, l)
		}
	}
	gauge(c.pending, float64(s.Pending))
	ready := 0.0
	if s.Ready && !s.Finished {
		ready = 1
	}
	gauge(c.up, ready)
}

// constHistogram is h as a Prometheus histogram (cumulative buckets).
func constHistogram(desc *prometheus.Desc, h engine.Histogram, labels []string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(engine.LatencyBuckets))
	var cum uint64
	for i, ub := range engine.LatencyBuckets {
		if i < len(h.BucketHits) {
			cum += uint64(h.BucketHits[i])
		}
		buckets[ub.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(desc, uint64(h.Count), h.Sum.Seconds(), buckets, labels...)
}

// Handler serves /metrics (the collector plus Go runtime and process
// metrics), /healthz (200 while the process runs) and /readyz (200 while
// every component is open and the run has not ended, else 503).
func Handler(pipeline string, src StatsSource) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(pipeline, src),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s := src.Stats()
		if !s.Ready || s.Finished {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Serve listens on addr and serves Handler in the background.
func Serve(addr, pipeline string, src StatsSource) (*Server, error) {
	return ServeHandler(addr, Handler(pipeline, src))
}

// ServeHandler listens on addr and serves h in the background (Handler
// with more routes beside it: flowctl run's dashboard).
func ServeHandler(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	// Streams (a dashboard's tap) never go idle: their requests' context
	// ends when Close starts, so that they return and Shutdown is quick.
	base, cancel := context.WithCancel(context.Background())
	s := &Server{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
			BaseContext: func(net.Listener) context.Context { return base }},
		ln:   ln,
		done: make(chan error, 1),
	}
	s.srv.RegisterOnShutdown(cancel)
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, letting requests in flight finish within ctx;
// those still open then (streams: a dashboard's tap) are cut.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return errors.Join(err, serr)
	}
	return err
}
