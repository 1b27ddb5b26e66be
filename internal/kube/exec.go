package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

const (
	execV1      = "client.authentication.k8s.io/v1"
	execV1beta1 = "client.authentication.k8s.io/v1beta1"
)

// execCredential is the plugin's answer (ExecCredential status).
type execCredential struct {
	token string
	cert  *tls.Certificate
	// expires is zero when the plugin set no expirationTimestamp: the
	// credential is then kept until the server refuses it.
	expires time.Time
}

// execAuth runs an exec plugin when a credential is needed, and keeps its
// answer until it expires or the server answers 401.
type execAuth struct {
	cfg     *ExecConfig
	server  string
	caData  []byte
	timeout time.Duration

	mu   sync.Mutex
	cred *execCredential
}

// get returns the cached credential, running the plugin when there is none
// or it has expired (or will within a few seconds).
func (a *execAuth) get(ctx context.Context) (*execCredential, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.cred; c != nil && (c.expires.IsZero() || time.Until(c.expires) > 10*time.Second) {
		return c, nil
	}
	c, err := a.run(ctx)
	if err != nil {
		return nil, err
	}
	a.cred = c
	return c, nil
}

// invalidate drops cred (the server refused it) so the next get runs the
// plugin again.
func (a *execAuth) invalidate(cred *execCredential) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cred == cred {
		a.cred = nil
	}
}

func (a *execAuth) run(ctx context.Context) (*execCredential, error) {
	x := a.cfg
	name := fmt.Sprintf("exec credential plugin %q", x.Command)
	if x.InteractiveMode == "Always" {
		return nil, fmt.Errorf("%s: interactiveMode Always needs a terminal; flowctl runs plugins without one", name)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}

	// KUBERNETES_EXEC_INFO tells the plugin what is asked of it.
	spec := map[string]any{"interactive": false}
	if x.ProvideClusterInfo {
		cluster := map[string]any{"server": a.server}
		if len(a.caData) > 0 {
			cluster["certificate-authority-data"] = a.caData // []byte: base64 in JSON
		}
		spec["cluster"] = cluster
	}
	info, err := json.Marshal(map[string]any{"apiVersion": x.APIVersion, "kind": "ExecCredential", "spec": spec})
	if err != nil {
		return nil, err
	}

	cmd := exec.CommandContext(ctx, x.Command, x.Args...)
	cmd.Env = append(os.Environ(), "KUBERNETES_EXEC_INFO="+string(info))
	for _, e := range x.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			msg := fmt.Sprintf("%s: not found", name)
			if x.InstallHint != "" {
				msg += "\n" + strings.TrimSpace(x.InstallHint)
			}
			return nil, errors.New(msg)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", name, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %v%s", name, err, tailOf(stderr.String()))
	}

	var out struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Status     *struct {
			Token                 string `json:"token"`
			ClientCertificateData string `json:"clientCertificateData"`
			ClientKeyData         string `json:"clientKeyData"`
			ExpirationTimestamp   string `json:"expirationTimestamp"`
		} `json:"status"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("%s: its output is not an ExecCredential: %v", name, err)
	}
	if out.Kind != "ExecCredential" {
		return nil, fmt.Errorf("%s: it printed kind %q, not ExecCredential", name, out.Kind)
	}
	if out.APIVersion != x.APIVersion {
		return nil, fmt.Errorf("%s: it answered apiVersion %q to a request for %q", name, out.APIVersion, x.APIVersion)
	}
	st := out.Status
	if st == nil {
		return nil, fmt.Errorf("%s: its ExecCredential has no status", name)
	}
	c := &execCredential{token: st.Token}
	if st.ClientCertificateData != "" || st.ClientKeyData != "" {
		if st.ClientCertificateData == "" || st.ClientKeyData == "" {
			return nil, fmt.Errorf("%s: status needs both clientCertificateData and clientKeyData", name)
		}
		cert, err := tls.X509KeyPair([]byte(st.ClientCertificateData), []byte(st.ClientKeyData))
		if err != nil {
			return nil, fmt.Errorf("%s: its client certificate: %v", name, err)
		}
		c.cert = &cert
	}
	if c.token == "" && c.cert == nil {
		return nil, fmt.Errorf("%s: status has neither a token nor a client certificate", name)
	}
	if st.ExpirationTimestamp != "" {
		t, err := time.Parse(time.RFC3339, st.ExpirationTimestamp)
		if err != nil {
			return nil, fmt.Errorf("%s: expirationTimestamp %q: %v", name, st.ExpirationTimestamp, err)
		}
		c.expires = t
	}
	return c, nil
}

// tailOf returns the last lines of a command's stderr, for an error.
func tailOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return ": " + strings.Join(lines, "\n")
}
