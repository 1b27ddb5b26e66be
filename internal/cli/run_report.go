package cli

import (
	"context"
	"fmt"
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
		Counters:    func() report.Counters { return report.FromStats(e.Stats()) },
		Health:      componentHealth(e, ext),
		Reasons: func() map[string]string {
			_, why := report.HealthFromStats(e.Stats())
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
		out, _ := report.HealthFromStats(e.Stats())
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
