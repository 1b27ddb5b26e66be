package components

import (
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/wiretls"
)

// TLS and SASL to the brokers, shared by the kafka source and sink. The
// files and the password are read when the component opens, not when the
// pipeline is validated, so that a pipeline file can be checked on a
// machine without the secrets.

const kafkaDefaultPasswordEnv = "KAFKA_PASSWORD"

var kafkaSecurityFields = []flow.Field{
	{Name: "tls", Type: flow.TypeObject, Example: map[string]any{"ca_file": "/etc/kafka/ca.pem"},
		Description: "Connect to the brokers with TLS (1.2 or later). Present means on: tls: {} trusts the system's roots; the fields below add a CA, a client certificate (mutual TLS) or another name to check. Files are relative to the pipeline file.",
		Fields: []flow.Field{
			{Name: "ca_file", Type: flow.TypeString, Description: "PEM file of the CA (or CAs) that signed the brokers' certificates. Default: the system's roots."},
			{Name: "cert_file", Type: flow.TypeString, Description: "PEM client certificate, for brokers that require mutual TLS; needs key_file."},
			{Name: "key_file", Type: flow.TypeString, Description: "PEM key of cert_file."},
			{Name: "server_name", Type: flow.TypeString, Description: "The name checked against each broker's certificate. Default: the host of the address dialled."},
			{Name: "insecure_skip_verify", Type: flow.TypeBool, Default: false, Description: "Do not check the brokers' certificates at all (encrypted, but anyone in the middle can read it). For tests only; a warning is logged."},
		}},
	{Name: "sasl", Type: flow.TypeObject, Example: map[string]any{"mechanism": "SCRAM-SHA-512", "user": "flowctl", "password_env": "KAFKA_PASSWORD"},
		Description: "Authenticate to the brokers with SASL. The password comes from an environment variable or a file and is never logged nor shown. Use it with tls: PLAIN sends the password as it is.",
		Fields: []flow.Field{
			{Name: "mechanism", Type: flow.TypeString, Enum: []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}, Description: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (required)."},
			{Name: "user", Type: flow.TypeString, Description: "The user name (required); write ${KAFKA_USER} to take it from the environment."},
			{Name: "password_env", Type: flow.TypeString, Default: kafkaDefaultPasswordEnv, Description: "Environment variable that holds the password."},
			{Name: "password_file", Type: flow.TypeString, Example: "/run/secrets/kafka-password", Description: "File that holds the password (a mounted secret); a trailing newline is ignored. Takes precedence over password_env. Relative to the pipeline file."},
		}},
}

// kafkaTLS is the parsed tls field; nil when TLS is off.
type kafkaTLS struct {
	files    wiretls.ClientOptions
	insecure bool
}

// kafkaSASL is the parsed sasl field; nil when SASL is off.
type kafkaSASL struct {
	mechanism, user       string
	passwordEnv, passFile string
}

func kafkaParseSecurity(cfg flow.Config, c *kafkaConn) []error {
	var errs []error
	t, err := cfgObject(cfg, "tls")
	if err != nil {
		errs = append(errs, err)
	}
	if t != nil {
		tc := flow.Config(t)
		c.tls = &kafkaTLS{
			files: wiretls.ClientOptions{
				CAFile:     ioCfgString(tc, "ca_file", ""),
				CertFile:   ioCfgString(tc, "cert_file", ""),
				KeyFile:    ioCfgString(tc, "key_file", ""),
				ServerName: ioCfgString(tc, "server_name", ""),
			},
			insecure: ioCfgBool(tc, "insecure_skip_verify", false),
		}
		if (c.tls.files.CertFile == "") != (c.tls.files.KeyFile == "") {
			errs = append(errs, ioFieldErr("tls", "a client certificate needs both cert_file and key_file", "set both, or neither"))
		}
	}
	s, err := cfgObject(cfg, "sasl")
	if err != nil {
		errs = append(errs, err)
	}
	if s != nil {
		sc := flow.Config(s)
		c.sasl = &kafkaSASL{
			mechanism:   strings.ToUpper(ioCfgString(sc, "mechanism", "")),
			user:        ioCfgString(sc, "user", ""),
			passwordEnv: ioCfgString(sc, "password_env", kafkaDefaultPasswordEnv),
			passFile:    ioCfgString(sc, "password_file", ""),
		}
		switch c.sasl.mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		case "":
			errs = append(errs, ioFieldErr("sasl.mechanism", "is required", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
		default:
			errs = append(errs, ioFieldErr("sasl.mechanism", fmt.Sprintf("%q is not a mechanism flowctl speaks", c.sasl.mechanism), "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
		}
		if c.sasl.user == "" {
			errs = append(errs, ioFieldErr("sasl.user", "is required", "the SASL user name, e.g. user: ${KAFKA_USER}"))
		}
	}
	return errs
}

// resolve makes the security files relative to the pipeline file's
// directory.
func (c *kafkaConn) resolve(dir string) {
	if c.tls != nil {
		c.tls.files.CAFile = ioResolvePath(dir, c.tls.files.CAFile)
		c.tls.files.CertFile = ioResolvePath(dir, c.tls.files.CertFile)
		c.tls.files.KeyFile = ioResolvePath(dir, c.tls.files.KeyFile)
	}
	if c.sasl != nil {
		c.sasl.passFile = ioResolvePath(dir, c.sasl.passFile)
	}
}

// securityOpts loads the TLS files and the password into client options.
// Errors name the field and never the password.
func (c kafkaConn) securityOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if c.tls != nil {
		cfg, err := wiretls.ClientConfig(c.tls.files)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		cfg.InsecureSkipVerify = c.tls.insecure
		// franz-go clones it for each dial and checks each broker's own
		// host unless server_name says otherwise.
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if c.sasl != nil {
		pw, err := c.sasl.password()
		if err != nil {
			return nil, err
		}
		var m sasl.Mechanism
		switch c.sasl.mechanism {
		case "PLAIN":
			m = plain.Auth{User: c.sasl.user, Pass: pw}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: c.sasl.user, Pass: pw}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: c.sasl.user, Pass: pw}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (s *kafkaSASL) password() (string, error) {
	if s.passFile != "" {
		b, err := os.ReadFile(s.passFile)
		if err != nil {
			return "", fmt.Errorf("sasl.password_file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("sasl.password_file %s is empty; put the password in it", s.passFile)
		}
		return pw, nil
	}
	pw, ok := os.LookupEnv(s.passwordEnv)
	if !ok || pw == "" {
		return "", fmt.Errorf("sasl: no password: environment variable %s is not set; export it (or set sasl.password_env to the variable that holds it, or sasl.password_file to a file)", s.passwordEnv)
	}
	return pw, nil
}

// plaintextWarning is what Open logs when the settings send secrets or
// data where others can read them; "" when nothing is wrong.
func (c kafkaConn) plaintextWarning() string {
	switch {
	case c.tls != nil && c.tls.insecure:
		return "tls.insecure_skip_verify is on: the brokers' certificates are not checked"
	case c.sasl != nil && c.sasl.mechanism == "PLAIN" && c.tls == nil:
		for _, b := range c.brokers {
			if !wiretls.IsLoopback(b) {
				return "SASL PLAIN without tls sends the password unencrypted to " + b + "; add tls"
			}
		}
	}
	return ""
}
