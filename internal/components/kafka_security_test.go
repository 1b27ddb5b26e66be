package components

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/kafkatest"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
)

// TestKafkaSecurityConfig: the tls and sasl fields are checked when the
// pipeline is validated, at their paths, with what to write.
func TestKafkaSecurityConfig(t *testing.T) {
	spec, err := NewRegistry().Lookup(flow.RoleSink, "kafka")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string // "" = valid
	}{
		{"tls on with system roots", flow.Config{"tls": map[string]any{}}, ""},
		{"mutual tls", flow.Config{"tls": map[string]any{"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"}}, ""},
		{"cert without key", flow.Config{"tls": map[string]any{"cert_file": "c.pem"}}, "tls: a client certificate needs both cert_file and key_file"},
		{"scram", flow.Config{"sasl": map[string]any{"mechanism": "SCRAM-SHA-512", "user": "u"}}, ""},
		{"mechanism in lower case", flow.Config{"sasl": map[string]any{"mechanism": "plain", "user": "u"}}, ""},
		{"no mechanism", flow.Config{"sasl": map[string]any{"user": "u"}}, "sasl.mechanism: is required"},
		{"unknown mechanism", flow.Config{"sasl": map[string]any{"mechanism": "GSSAPI", "user": "u"}}, `sasl.mechanism: "GSSAPI" is not a mechanism flowctl speaks`},
		{"no user", flow.Config{"sasl": map[string]any{"mechanism": "PLAIN"}}, "sasl.user: is required"},
		{"sasl not a mapping", flow.Config{"sasl": "PLAIN"}, "sasl: must be a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := flow.Config{"topic": "out"}
			for k, v := range tc.cfg {
				cfg[k] = v
			}
			err := spec.Validate(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestKafkaTLSAndSASL: against a kfake cluster (franz-go's in-process
// Kafka-protocol fake, not Apache Kafka) that listens with TLS and
// requires SASL, the sink writes and the source reads back with the
// mechanisms flowctl offers; a wrong password, a missing one, an
// untrusted CA and a missing client certificate stop the component at
// Open with an error that says so and never holds the password.
func TestKafkaTLSAndSASL(t *testing.T) {
	pki := tlstest.New(t)
	const user, pass = "flowctl", "s3cret-pa55"
	for _, tc := range []struct {
		name   string
		mutual bool   // the cluster requires client certificates
		mech   string // the cluster's and the components' mechanism
		file   bool   // the password from password_file, not the environment
	}{
		{"tls and scram-sha-256", false, "SCRAM-SHA-256", false},
		{"mutual tls and scram-sha-512 from a file", true, "SCRAM-SHA-512", true},
		{"tls and plain", false, "PLAIN", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			so := tlsutil.ServerOptions{CertFile: pki.Files.ServerCert, KeyFile: pki.Files.ServerKey}
			if tc.mutual {
				so.ClientCAFile = pki.Files.CACert
			}
			scfg, err := tlsutil.ServerConfig(so)
			if err != nil {
				t.Fatal(err)
			}
			k := kafkatest.StartWith(t, []kfake.Opt{kfake.TLS(scfg), kfake.EnableSASL(), kfake.Superuser(tc.mech, user, pass)}, 2, "secure")
			// The test's own client (to count what was stored) logs in too.
			var mech sasl.Mechanism
			switch tc.mech {
			case "PLAIN":
				mech = plain.Auth{User: user, Pass: pass}.AsMechanism()
			case "SCRAM-SHA-256":
				mech = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
			default:
				mech = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
			}
			k.ClientOpts = []kgo.Opt{kgo.DialTLSConfig(pki.ClientConfig(t, pki.ClientOptions())), kgo.SASL(mech)}

			dir := t.TempDir()
			tlsCfg := map[string]any{"ca_file": pki.Files.CACert}
			if tc.mutual {
				tlsCfg["cert_file"] = pki.Files.ClientCert
				tlsCfg["key_file"] = pki.Files.ClientKey
			}
			saslCfg := map[string]any{"mechanism": tc.mech, "user": user}
			env := "FLOWCTL_TEST_KAFKA_PW_" + strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToUpper(tc.name))
			if tc.file {
				os.WriteFile(filepath.Join(dir, "pw"), []byte(pass+"\n"), 0o600)
				saslCfg["password_file"] = filepath.Join(dir, "pw")
			} else {
				t.Setenv(env, pass)
				saslCfg["password_env"] = env
			}
			conn := func(extra flow.Config) flow.Config {
				c := flow.Config{"brokers": k.Brokers, "tls": tlsCfg, "sasl": saslCfg, "connect_timeout": "5s"}
				for key, v := range extra {
					c[key] = v
				}
				return c
			}

			s := kafkaTestSink(t, conn(flow.Config{"topic": "secure"}))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Open(ctx); err != nil {
				t.Fatalf("sink open: %v", err)
			}
			var batch []*flow.Event
			for i := range 6 {
				batch = append(batch, &flow.Event{ID: fmt.Sprintf("e%d", i), Type: "t", Source: "s", DataContentType: "application/json", Data: fmt.Appendf(nil, `{"n":%d}`, i)})
			}
			if err := s.Write(ctx, batch); err != nil {
				t.Fatalf("write: %v", err)
			}
			if n := k.Stored(t, "secure"); n != 6 {
				t.Fatalf("the topic holds %d records, want 6", n)
			}
			em := newIOTestEmitter()
			em.autoAck = true
			kafkaRun(t, kafkaTestSource(t, conn(flow.Config{"topics": []any{"secure"}})), em)
			got := map[string]bool{}
			for _, ev := range em.waitEvents(t, 6) {
				got[string(ev.Data)] = true
			}
			for i := range 6 {
				if !got[fmt.Sprintf(`{"n":%d}`, i)] {
					t.Fatalf("read back %v, missing n=%d", got, i)
				}
			}

			// What must fail at Open, and say why without the password.
			wrong := map[string]any{"mechanism": tc.mech, "user": user, "password_env": env + "_WRONG"}
			t.Setenv(env+"_WRONG", "not-"+pass)
			otherCA := map[string]any{"ca_file": pki.OtherCA}
			noCert := map[string]any{"ca_file": pki.Files.CACert}
			fails := []struct {
				what string
				cfg  flow.Config
				want string
			}{
				{"wrong password", flow.Config{"sasl": wrong}, "reach the Kafka cluster"},
				{"no password", flow.Config{"sasl": map[string]any{"mechanism": tc.mech, "user": user, "password_env": env + "_UNSET"}}, "environment variable " + env + "_UNSET is not set"},
				{"untrusted CA", flow.Config{"tls": otherCA}, "certificate"},
				{"no tls", flow.Config{"tls": nil}, "reach the Kafka cluster"},
			}
			if tc.mutual {
				fails = append(fails, struct {
					what string
					cfg  flow.Config
					want string
				}{"no client certificate", flow.Config{"tls": noCert}, "reach the Kafka cluster"})
			}
			for _, f := range fails {
				cfg := conn(flow.Config{"topic": "secure", "connect_timeout": "2s"})
				for key, v := range f.cfg {
					if v == nil {
						delete(cfg, key)
						continue
					}
					cfg[key] = v
				}
				bad := kafkaTestSink(t, cfg)
				octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := bad.Open(octx)
				ocancel()
				if err == nil || !strings.Contains(err.Error(), f.want) {
					t.Errorf("%s: open: %v, want an error containing %q", f.what, err, f.want)
				}
				if err != nil && strings.Contains(err.Error(), pass) {
					t.Errorf("%s: the error holds the password: %v", f.what, err)
				}
			}
		})
	}
}
