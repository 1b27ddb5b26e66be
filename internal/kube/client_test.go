package kube

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The exec credential plugin of these tests is the test binary itself,
// run again with FLOWCTL_KUBE_TEST_PLUGIN set (portable: no shell).
func TestMain(m *testing.M) {
	if mode := os.Getenv("FLOWCTL_KUBE_TEST_PLUGIN"); mode != "" {
		os.Exit(testPlugin(mode))
	}
	os.Exit(m.Run())
}

func testPlugin(mode string) int {
	var info struct {
		APIVersion string         `json:"apiVersion"`
		Spec       map[string]any `json:"spec"`
	}
	if err := json.Unmarshal([]byte(os.Getenv("KUBERNETES_EXEC_INFO")), &info); err != nil {
		fmt.Fprintln(os.Stderr, "no KUBERNETES_EXEC_INFO:", err)
		return 2
	}
	// Each run is counted in a file, and its number picks the token.
	runs := 1
	if f := os.Getenv("PLUGIN_RUNS"); f != "" {
		b, _ := os.ReadFile(f)
		runs = len(b) + 1
		os.WriteFile(f, append(b, '.'), 0o600)
	}
	status := map[string]any{}
	switch mode {
	case "token":
		tokens := strings.Split(os.Getenv("PLUGIN_TOKENS"), ",")
		status["token"] = tokens[min(runs, len(tokens))-1]
	case "cert":
		cert, _ := os.ReadFile(os.Getenv("PLUGIN_CERT"))
		key, _ := os.ReadFile(os.Getenv("PLUGIN_KEY"))
		status["clientCertificateData"] = string(cert)
		status["clientKeyData"] = string(key)
	case "fail":
		fmt.Fprintln(os.Stderr, "you are not logged in: run get-token login")
		return 1
	case "empty":
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"apiVersion": info.APIVersion, "kind": "ExecCredential", "status": status})
	return 0
}

// fakeServer is a small API server: it serves ConfigMaps (namespaced) and
// Namespaces (cluster-scoped) of the core group, records requests, and
// accepts the bearer token "good", basic auth ann:pw, or a client
// certificate whose CN is "me".
type fakeServer struct {
	*httptest.Server
	ca []byte

	mu        sync.Mutex
	requests  []string // "METHOD path?query"
	bodies    []string
	types     []string // Content-Type
	discovery int
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	cert, key := testCert(t, "127.0.0.1")
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	f.ca = cert
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Server.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair},
		// Client certificates are checked in serve: any is asked for.
		ClientAuth: tls.RequestClientCert,
	}
	// Handshakes a test refuses on purpose are no news.
	f.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "reason": reason, "code": code})
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.bodies = append(f.bodies, string(body))
	f.types = append(f.types, r.Header.Get("Content-Type"))
	f.mu.Unlock()

	authed := r.Header.Get("Authorization") == "Bearer good"
	if u, p, ok := r.BasicAuth(); ok && u == "ann" && p == "pw" {
		authed = true
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].Subject.CommonName == "me" {
		authed = true
	}
	if !authed {
		status(w, 401, "Unauthorized", "Unauthorized")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	switch {
	case p == "/api/v1":
		f.mu.Lock()
		f.discovery++
		f.mu.Unlock()
		io.WriteString(w, `{"kind":"APIResourceList","groupVersion":"v1","resources":[
			{"name":"configmaps","namespaced":true,"kind":"ConfigMap"},
			{"name":"namespaces","namespaced":false,"kind":"Namespace"},
			{"name":"namespaces/status","namespaced":false,"kind":"Namespace"}]}`)
	case strings.HasPrefix(p, "/apis/"):
		status(w, 404, "NotFound", "the server could not find the requested resource")
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/configmaps"):
		// Two pages.
		if r.URL.Query().Get("continue") == "" {
			io.WriteString(w, `{"kind":"ConfigMapList","metadata":{"continue":"page2"},"items":[{"metadata":{"name":"a","namespace":"ns"}}]}`)
		} else {
			io.WriteString(w, `{"kind":"ConfigMapList","metadata":{},"items":[{"metadata":{"name":"b","namespace":"ns"},"data":{"n":"1"}}]}`)
		}
	case strings.HasSuffix(p, "/missing"):
		status(w, 404, "NotFound", `configmaps "missing" not found`)
	case strings.HasSuffix(p, "/bad"):
		status(w, 422, "Invalid", `ConfigMap "bad" is invalid: data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`)
	case strings.HasSuffix(p, "/html"):
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		io.WriteString(w, "<html>bad gateway</html>")
	default:
		io.WriteString(w, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"ns","resourceVersion":"7"},"data":{"replicas":"2"},"spec":{"n":2,"f":1.5}}`)
	}
}

func (f *fakeServer) config(namespace string) *Config {
	return &Config{Server: f.URL, CAData: f.ca, Namespace: namespace, Token: "good"}
}

func (f *fakeServer) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func TestClientRequests(t *testing.T) {
	f := newFakeServer(t)
	c, err := NewClient(f.config("team"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Apply: the namespace of the client when the document has none, SSA
	// content type and query.
	o, err := c.Apply(ctx, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "x" || o.Kind != "ConfigMap" || o.ResourceVersion() != "7" || o.Field("spec", "n") != int64(2) || o.Field("spec", "f") != 1.5 {
		t.Errorf("object = %+v", o)
	}
	// The document's namespace wins; dry run and force are passed.
	if _, err := c.Apply(ctx, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: other}\n"),
		ApplyOptions{DryRun: true, Force: true, FieldManager: "me"}); err != nil {
		t.Fatal(err)
	}
	// A cluster-scoped kind's path has no namespace.
	if _, err := c.Apply(ctx, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: x, namespace: ignored}\n"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /api/v1",
		"PATCH /api/v1/namespaces/team/configmaps/x?fieldManager=flowctl&fieldValidation=Strict",
		"PATCH /api/v1/namespaces/other/configmaps/x?dryRun=All&fieldManager=me&fieldValidation=Strict&force=true",
		"PATCH /api/v1/namespaces/x?fieldManager=flowctl&fieldValidation=Strict",
	}
	if got := f.log(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f.types[1] != "application/apply-patch+yaml" || f.bodies[1] != "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n" {
		t.Errorf("apply sent %q: %q", f.types[1], f.bodies[1])
	}

	// Errors carry the server's message verbatim, with the object.
	_, err = c.Apply(ctx, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\n"), ApplyOptions{})
	wantErr := `ConfigMap team/bad: ConfigMap "bad" is invalid: data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`
	if err == nil || err.Error() != wantErr {
		t.Errorf("err = %v\nwant  %s", err, wantErr)
	}
	_, err = c.Get(ctx, "v1", "ConfigMap", "", "missing")
	if !IsNotFound(err) || err.Error() != `ConfigMap team/missing: configmaps "missing" not found` {
		t.Errorf("get missing: %v", err)
	}
	_, err = c.Get(ctx, "v1", "ConfigMap", "", "html")
	if err == nil || err.Error() != "ConfigMap team/html: the server answered 502: <html>bad gateway</html>" {
		t.Errorf("non-Status error: %v", err)
	}
	if err := c.Delete(ctx, "v1", "ConfigMap", "", "missing"); err != nil {
		t.Errorf("delete of a missing object: %v", err)
	}
	_, err = c.Get(ctx, "apps/v1", "Deployment", "", "x")
	if err == nil || !strings.Contains(err.Error(), `the cluster serves no apiVersion "apps/v1"`) {
		t.Errorf("unknown group: %v", err)
	}
	_, err = c.Get(ctx, "v1", "Pod", "", "x")
	if err == nil || err.Error() != "Pod team/x: the cluster serves no kind Pod in apiVersion v1" {
		t.Errorf("unknown kind: %v", err)
	}
	_, err = c.Apply(ctx, []byte("kind: ConfigMap\nmetadata: {generateName: x-}\n"), ApplyOptions{})
	if err == nil || err.Error() != "ConfigMap: metadata.generateName cannot be applied: give metadata.name" {
		t.Errorf("generateName: %v", err)
	}

	// Discovery: once for the ConfigMaps and Namespaces, again for the
	// unknown kind Pod (a CRD may have been installed since).
	if f.discovery != 2 {
		t.Errorf("discovery fetched %d times, want 2", f.discovery)
	}

	// List follows continue tokens and fills in apiVersion and kind.
	items, err := c.List(ctx, "v1", "ConfigMap", AllNamespaces, "app=web")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Name != "a" || items[1].Name != "b" || items[1].Kind != "ConfigMap" || items[1].Content["apiVersion"] != "v1" {
		t.Errorf("list = %+v", items)
	}
	reqs := f.log()
	if got := reqs[len(reqs)-2:]; got[0] != "GET /api/v1/configmaps?labelSelector=app%3Dweb&limit=500" ||
		got[1] != "GET /api/v1/configmaps?continue=page2&labelSelector=app%3Dweb&limit=500" {
		t.Errorf("list requests: %v", got)
	}
}

func TestClientAuth(t *testing.T) {
	f := newFakeServer(t)
	ctx := context.Background()
	cert, key := testCert(t, "me")
	tests := []struct {
		name string
		cfg  func(*Config)
		err  string
	}{
		{"token", func(c *Config) {}, ""},
		{"wrong token", func(c *Config) { c.Token = "bad" }, "ConfigMap ns/x: discovering apiVersion v1: Unauthorized"},
		{"token file", func(c *Config) { c.Token, c.TokenFile = "", writeTemp(t, "token", "good\n") }, ""},
		{"basic", func(c *Config) { c.Token, c.Username, c.Password = "", "ann", "pw" }, ""},
		{"client cert data", func(c *Config) { c.Token, c.CertData, c.KeyData = "", cert, key }, ""},
		{"client cert files", func(c *Config) {
			c.Token, c.CertFile, c.KeyFile = "", writeTemp(t, "c.pem", string(cert)), writeTemp(t, "k.pem", string(key))
		}, ""},
		{"CA file", func(c *Config) { c.CAData, c.CAFile = nil, writeTemp(t, "ca.pem", string(f.ca)) }, ""},
		{"unknown CA", func(c *Config) { c.CAData = cert }, "certificate signed by unknown authority"},
		{"insecure", func(c *Config) { c.CAData, c.Insecure = nil, true }, ""},
		{"tls server name", func(c *Config) { c.TLSServerName = "localhost" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config("ns")
			tt.cfg(cfg)
			c, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(ctx, "v1", "ConfigMap", "", "x")
			if tt.err == "" && err != nil {
				t.Fatal(err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func pluginConfig(t *testing.T, f *fakeServer, mode string, env ...ExecEnv) *Config {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.config("ns")
	cfg.Token = ""
	cfg.Exec = &ExecConfig{
		APIVersion: execV1,
		Command:    self,
		Env:        append([]ExecEnv{{"FLOWCTL_KUBE_TEST_PLUGIN", mode}}, env...),
	}
	return cfg
}

func TestExecPlugin(t *testing.T) {
	f := newFakeServer(t)
	ctx := context.Background()
	get := func(cfg *Config) error {
		c, err := NewClient(cfg)
		if err != nil {
			return err
		}
		_, err = c.Get(ctx, "v1", "ConfigMap", "", "x")
		if err == nil {
			_, err = c.Get(ctx, "v1", "ConfigMap", "", "x")
		}
		return err
	}
	runs := func(p string) int {
		b, _ := os.ReadFile(p)
		return len(b)
	}

	t.Run("token, cached", func(t *testing.T) {
		counter := writeTemp(t, "runs", "")
		if err := get(pluginConfig(t, f, "token", ExecEnv{"PLUGIN_TOKENS", "good"}, ExecEnv{"PLUGIN_RUNS", counter})); err != nil {
			t.Fatal(err)
		}
		if n := runs(counter); n != 1 {
			t.Errorf("plugin ran %d times for 3 requests, want 1 (cached)", n)
		}
	})
	t.Run("v1beta1", func(t *testing.T) {
		cfg := pluginConfig(t, f, "token", ExecEnv{"PLUGIN_TOKENS", "good"})
		cfg.Exec.APIVersion = execV1beta1
		if err := get(cfg); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refused token is asked for again once", func(t *testing.T) {
		counter := writeTemp(t, "runs", "")
		if err := get(pluginConfig(t, f, "token", ExecEnv{"PLUGIN_TOKENS", "stale,good"}, ExecEnv{"PLUGIN_RUNS", counter})); err != nil {
			t.Fatal(err)
		}
		if n := runs(counter); n != 2 {
			t.Errorf("plugin ran %d times, want 2", n)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		cert, key := testCert(t, "me")
		if err := get(pluginConfig(t, f, "cert", ExecEnv{"PLUGIN_CERT", writeTemp(t, "c", string(cert))}, ExecEnv{"PLUGIN_KEY", writeTemp(t, "k", string(key))})); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("failing plugin shows its stderr", func(t *testing.T) {
		err := get(pluginConfig(t, f, "fail"))
		if err == nil || !strings.Contains(err.Error(), "exit status 1: you are not logged in: run get-token login") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no credential", func(t *testing.T) {
		err := get(pluginConfig(t, f, "empty"))
		if err == nil || !strings.Contains(err.Error(), "status has neither a token nor a client certificate") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing command shows the install hint", func(t *testing.T) {
		cfg := pluginConfig(t, f, "token")
		cfg.Exec.Command = filepath.Join(t.TempDir(), "no-such-plugin")
		cfg.Exec.InstallHint = "get it from the wiki"
		err := get(cfg)
		if err == nil || !strings.Contains(err.Error(), "not found\nget it from the wiki") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("interactive Always is refused", func(t *testing.T) {
		cfg := pluginConfig(t, f, "token")
		cfg.Exec.InteractiveMode = "Always"
		err := get(cfg)
		if err == nil || !strings.Contains(err.Error(), "interactiveMode Always needs a terminal") {
			t.Fatalf("err = %v", err)
		}
	})
}

// The client is safe for concurrent use (discovery cache, exec cache).
func TestClientConcurrent(t *testing.T) {
	f := newFakeServer(t)
	c, err := NewClient(pluginConfig(t, f, "token", ExecEnv{"PLUGIN_TOKENS", "good"}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := c.Get(context.Background(), "v1", "ConfigMap", "", "x"+strconv.Itoa(i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
