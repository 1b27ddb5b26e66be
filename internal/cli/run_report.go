package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// startReporter registers pl's components with the flowctl server of
// --report-to and heartbeats e's counters (see internal/report), and for
// the external components of ext (nil when there are none) their own
// health as their supervisors see it.
func startReporter(ctx context.Context, o runOptions, pl *spec.Pipeline, e *engine.Engine, ext *external.Manager, log *slog.Logger) (*report.Reporter, error) {
	copts := tlsutil.ClientOptions{CAFile: o.reportCA, CertFile: o.reportCert, KeyFile: o.reportKey}
	cfg, err := tlsutil.ClientConfig(copts)
	if err != nil {
		return nil, fmt.Errorf("--report-to: %w", err)
	}
	if !copts.Enabled() {
		cfg = nil
	}
	token := ""
	if o.reportTokenFile != "" {
		b, err := os.ReadFile(o.reportTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--report-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return report.Start(rctx, report.Options{
		Addr:        o.reportTo,
		DialOptions: tlsutil.DialOptions(cfg, token, o.reportTo),
		Pipeline:    pl.Name,
		Revision:    o.revision,
		RunID:       o.runID,
		Components:  report.Components(pl),
		Counters:    func() report.Counters { return countersFromStats(e.Stats()) },
		Health:      componentHealth(e, ext),
		Reasons: func() map[string]string {
			_, why := healthFromStats(e.Stats())
			return why
		},
		Logger: log,
	})
}

// componentHealth reports the health of the components that are not
// simply as healthy as this process: ext's (nil without any) as their
// supervisors see them, and those the engine sees in trouble (a sink
// retrying a failed write); the worse of the two counts.
func componentHealth(e *engine.Engine, ext *external.Manager) func() map[string]streamv1.HealthStatus {
	return func() map[string]streamv1.HealthStatus {
		out, _ := healthFromStats(e.Stats())
		if ext == nil {
			return out
		}
		if out == nil {
			out = map[string]streamv1.HealthStatus{}
		}
		for name, h := range ext.Health() {
			out[name] = report.Worse(out[name], streamv1.HealthStatus(h)) // the same values
		}
		return out
	}
}

// exitDropped is the exit code of a run that dropped events without a
// dead-letter sink to keep them and without --allow-drops (flowctl server
// mirrors it as childExitDropped).
const exitDropped = 4

// checkDrops ends a run that otherwise succeeded: when events were dropped
// and the pipeline has no dead-letter sink, they are gone, so it says how
// many and where in one last line and fails with exitDropped, unless allow
// (--allow-drops). With a dead-letter sink, drops happen only where a
// component's on_error asks for them, and the summary counts them.
func checkDrops(w io.Writer, name string, s engine.Stats, allow bool) error {
	var dropped int64
	var where []string
	for _, c := range s.Components {
		if c.DeadLetter {
			return nil
		}
		if c.Dropped > 0 {
			dropped += c.Dropped
			where = append(where, fmt.Sprintf("%s %q %d", c.Role, c.Name, c.Dropped))
		}
	}
	if dropped == 0 {
		return nil
	}
	if allow {
		fmt.Fprintf(w, "flowctl run: pipeline %q dropped %d events (%s); allowed by --allow-drops\n", name, dropped, strings.Join(where, ", "))
		return nil
	}
	fmt.Fprintf(w, "flowctl run: pipeline %q dropped %d events (%s) and has no dead_letter sink to keep them: add one to see why, or pass --allow-drops to accept the loss (exit %d)\n",
		name, dropped, strings.Join(where, ", "), exitDropped)
	return &exitError{code: exitDropped}
}
