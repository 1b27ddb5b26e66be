package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// AllNamespaces, as List's namespace, lists the objects of every namespace.
const AllNamespaces = "*"

// Client talks to one cluster's API server as one user.
type Client struct {
	cfg   *Config
	base  *url.URL
	http  *http.Client
	exec  *execAuth
	certs bool // a static client certificate authenticates

	mu        sync.Mutex
	discovery map[string]map[string]resource // groupVersion -> kind -> resource
}

// resource is what discovery says of a kind.
type resource struct {
	name       string // plural, as in the URL: deployments
	namespaced bool
}

// ApplyOptions are the options of a server-side apply.
type ApplyOptions struct {
	// DryRun asks the server to validate and default the object, run
	// admission, and answer with what it would store, storing nothing.
	DryRun bool
	// FieldManager owns the applied fields; "flowctl" when empty.
	FieldManager string
	// Force takes over fields another manager owns instead of failing with
	// a conflict.
	Force bool
}

// NewClient makes a client for cfg. It reads the files cfg names (CA,
// client certificate) now; it talks to the server only when asked.
func NewClient(cfg *Config) (*Client, error) {
	where := "kubernetes"
	if cfg.Path != "" {
		where = "kubeconfig " + cfg.Path
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	if cfg.Server == "" {
		return nil, fail("no server")
	}
	base, err := url.Parse(cfg.Server)
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fail("server %q is not an http(s) URL", cfg.Server)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")

	tlsCfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: cfg.Insecure,
		ServerName:         cfg.TLSServerName,
	}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fail("certificate-authority: %v", err)
		}
	}
	if len(ca) > 0 && !cfg.Insecure {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fail("certificate-authority: no PEM certificate in it")
		}
		tlsCfg.RootCAs = pool
	}

	c := &Client{cfg: cfg, base: base, discovery: map[string]map[string]resource{}}
	certPEM, keyPEM := cfg.CertData, cfg.KeyData
	if len(certPEM) == 0 && cfg.CertFile != "" {
		if certPEM, err = os.ReadFile(cfg.CertFile); err != nil {
			return nil, fail("client-certificate: %v", err)
		}
	}
	if len(keyPEM) == 0 && cfg.KeyFile != "" {
		if keyPEM, err = os.ReadFile(cfg.KeyFile); err != nil {
			return nil, fail("client-key: %v", err)
		}
	}
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fail("user %q: client certificate: %v", cfg.User, err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
		c.certs = true
	}
	if cfg.Exec != nil {
		c.exec = &execAuth{cfg: cfg.Exec, server: cfg.Server, caData: ca, timeout: time.Minute}
		if !c.certs {
			// The plugin may answer with a certificate: ask it during the
			// handshake (an empty certificate when it gave a token).
			tlsCfg.GetClientCertificate = func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				cred, err := c.exec.get(info.Context())
				if err != nil {
					return nil, err
				}
				if cred.cert == nil {
					return &tls.Certificate{}, nil
				}
				return cred.cert, nil
			}
		}
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = 4
	c.http = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	return c, nil
}

// Config returns the configuration the client was made from.
func (c *Client) Config() *Config { return c.cfg }

// Namespace is the namespace used when a document or a call names none:
// the kubeconfig context's, else "default".
func (c *Client) Namespace() string {
	if c.cfg.Namespace == "" {
		return "default"
	}
	return c.cfg.Namespace
}

// APIError is an error answer of the API server. Message is the server's
// Status message, verbatim.
type APIError struct {
	// Code is the HTTP status (404, 409, 422...).
	Code int
	// Reason is the Status reason: NotFound, AlreadyExists, Conflict,
	// Invalid, Forbidden, BadRequest... ("" when the body was no Status).
	Reason string
	// Message is the server's message, verbatim (the body's start when it
	// was no Status).
	Message string
	// Object names what the request was about ("Deployment ns/web"), or the
	// request when it was about no object.
	Object string
}

func (e *APIError) Error() string {
	if e.Object == "" {
		return e.Message
	}
	return e.Object + ": " + e.Message
}

// IsNotFound reports whether err is the server's 404.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}

// IsConflict reports whether err is a 409: with server-side apply, another
// field manager owns a field the document sets (ApplyOptions.Force takes
// it over).
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusConflict
}

// request is one call to the API server.
type request struct {
	method      string
	path        string // below the server's URL: /api/v1/namespaces/x/pods
	query       url.Values
	contentType string
	body        []byte
	object      string // for errors: "Deployment ns/web"
}

// do sends r and returns the body of a 2xx answer; other answers become an
// *APIError.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	u := *c.base
	u.Path = c.base.Path + r.path
	u.RawPath = ""
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	what := r.object
	if what == "" {
		what = r.method + " " + r.path
	}

	for attempt := 0; ; attempt++ {
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "flowctl")
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
		cred, err := c.authorize(ctx, req)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the answer: %w", what, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && cred != nil && attempt == 0 {
			// The plugin's credential was refused: ask it again, once, on
			// a new connection (a certificate is sent at the handshake).
			c.exec.invalidate(cred)
			c.http.CloseIdleConnections()
			continue
		}
		if resp.StatusCode/100 == 2 {
			return data, nil
		}
		return nil, apiError(resp.StatusCode, data, r.object)
	}
}

// authorize sets the request's credentials; it returns the exec plugin's
// credential when one was used.
func (c *Client) authorize(ctx context.Context, req *http.Request) (*execCredential, error) {
	cfg := c.cfg
	switch {
	case cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	case cfg.TokenFile != "":
		// Read each time: the file may be rotated (projected tokens).
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: user %q: tokenFile: %v", cfg.Path, cfg.User, err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
	case c.exec != nil:
		cred, err := c.exec.get(ctx)
		if err != nil {
			return nil, err
		}
		if cred.token != "" {
			req.Header.Set("Authorization", "Bearer "+cred.token)
		}
		return cred, nil
	case cfg.Username != "" || cfg.Password != "":
		req.SetBasicAuth(cfg.Username, cfg.Password)
	}
	return nil, nil
}

// apiError decodes an error answer: a metav1.Status when it is one.
func apiError(code int, body []byte, object string) *APIError {
	var st struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	}
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Message != "" {
		return &APIError{Code: code, Reason: st.Reason, Message: st.Message, Object: object}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	return &APIError{Code: code, Message: fmt.Sprintf("the server answered %d: %s", code, msg), Object: object}
}

// groupVersionPath is the discovery path of apiVersion: /api/v1 for the
// core group, /apis/GROUP/VERSION otherwise.
func groupVersionPath(apiVersion string) (string, error) {
	if apiVersion == "" || strings.Count(apiVersion, "/") > 1 || strings.HasPrefix(apiVersion, "/") || strings.HasSuffix(apiVersion, "/") {
		return "", fmt.Errorf("apiVersion %q is not GROUP/VERSION or VERSION", apiVersion)
	}
	if !strings.Contains(apiVersion, "/") {
		return "/api/" + apiVersion, nil
	}
	return "/apis/" + apiVersion, nil
}

// resourceFor maps apiVersion and kind to the resource that serves it,
// from the discovery API (cached; fetched again once when a kind is not in
// the cache, so CRDs installed meanwhile are found).
func (c *Client) resourceFor(ctx context.Context, apiVersion, kind string) (resource, error) {
	c.mu.Lock()
	kinds, ok := c.discovery[apiVersion]
	c.mu.Unlock()
	if ok {
		if r, ok := kinds[kind]; ok {
			return r, nil
		}
	}
	gvPath, err := groupVersionPath(apiVersion)
	if err != nil {
		return resource{}, err
	}
	data, err := c.do(ctx, request{method: http.MethodGet, path: gvPath})
	if err != nil {
		if IsNotFound(err) {
			return resource{}, fmt.Errorf("kind %s: the cluster serves no apiVersion %q", kind, apiVersion)
		}
		return resource{}, fmt.Errorf("discovering apiVersion %s: %w", apiVersion, err)
	}
	var list struct {
		Resources []struct {
			Name       string `json:"name"`
			Namespaced bool   `json:"namespaced"`
			Kind       string `json:"kind"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return resource{}, fmt.Errorf("discovering apiVersion %s: %w", apiVersion, err)
	}
	kinds = map[string]resource{}
	for _, r := range list.Resources {
		if strings.Contains(r.Name, "/") { // a subresource: deployments/scale
			continue
		}
		kinds[r.Kind] = resource{name: r.Name, namespaced: r.Namespaced}
	}
	c.mu.Lock()
	c.discovery[apiVersion] = kinds
	c.mu.Unlock()
	r, ok := kinds[kind]
	if !ok {
		return resource{}, fmt.Errorf("the cluster serves no kind %s in apiVersion %s", kind, apiVersion)
	}
	return r, nil
}

// objectPath is the URL path of a resource's collection (name "") or of
// one object. namespace is ignored for cluster-scoped resources; for
// namespaced ones "" is every namespace (collections only).
func objectPath(apiVersion string, r resource, namespace, name string) string {
	p, _ := groupVersionPath(apiVersion)
	if r.namespaced && namespace != "" {
		p += "/namespaces/" + url.PathEscape(namespace)
	}
	p += "/" + r.name
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// locate resolves the resource and namespace of an object.
func (c *Client) locate(ctx context.Context, m Meta) (resource, Meta, error) {
	if m.Kind == "" {
		return resource{}, m, errors.New("no kind given")
	}
	r, err := c.resourceFor(ctx, m.APIVersion, m.Kind)
	if err != nil {
		if m.Namespace == "" {
			m.Namespace = c.Namespace() // for the message: most kinds are namespaced
		}
		return resource{}, m, err
	}
	if !r.namespaced {
		m.Namespace = ""
	} else if m.Namespace == "" {
		m.Namespace = c.Namespace()
	}
	return r, m, nil
}

// Apply applies one YAML (or JSON) document with server-side apply: the
// server merges the fields it sets into the live object (creating it when
// there is none) and owns them as opts.FieldManager. Fields are validated
// strictly: an unknown or duplicate field is an error, not a warning. A
// namespaced object without a namespace goes to the client's namespace.
// The answer is the object as stored (or as it would be, with DryRun).
func (c *Client) Apply(ctx context.Context, doc []byte, opts ApplyOptions) (*Object, error) {
	m, err := ReadMeta(doc)
	if err != nil {
		return nil, err
	}
	r, m, err := c.locate(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m, err)
	}
	q := url.Values{}
	q.Set("fieldManager", opts.FieldManager)
	if opts.FieldManager == "" {
		q.Set("fieldManager", "flowctl")
	}
	q.Set("fieldValidation", "Strict")
	if opts.Force {
		q.Set("force", "true")
	}
	if opts.DryRun {
		q.Set("dryRun", "All")
	}
	data, err := c.do(ctx, request{
		method:      http.MethodPatch,
		path:        objectPath(m.APIVersion, r, m.Namespace, m.Name),
		query:       q,
		contentType: "application/apply-patch+yaml",
		body:        doc,
		object:      m.String(),
	})
	if err != nil {
		return nil, err
	}
	return decodeObject(data, m.String())
}

// Get returns one object. namespace "" is the client's namespace (and is
// ignored for cluster-scoped kinds). A missing object is an error for
// which IsNotFound is true.
func (c *Client) Get(ctx context.Context, apiVersion, kind, namespace, name string) (*Object, error) {
	r, m, err := c.locate(ctx, Meta{APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m, err)
	}
	if name == "" {
		return nil, fmt.Errorf("%s: no name given", m)
	}
	data, err := c.do(ctx, request{method: http.MethodGet, path: objectPath(apiVersion, r, m.Namespace, name), object: m.String()})
	if err != nil {
		return nil, err
	}
	return decodeObject(data, m.String())
}

// List returns the objects of a kind in namespace ("" is the client's,
// AllNamespaces every one; ignored for cluster-scoped kinds) that match
// labelSelector ("" matches all), e.g. "app.kubernetes.io/managed-by=flowctl".
func (c *Client) List(ctx context.Context, apiVersion, kind, namespace, labelSelector string) ([]*Object, error) {
	if namespace == AllNamespaces {
		namespace = ""
	} else if namespace == "" {
		namespace = c.Namespace()
	}
	r, err := c.resourceFor(ctx, apiVersion, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	what := "list " + kind
	if r.namespaced && namespace != "" {
		what += " in namespace " + namespace
	}
	var out []*Object
	q := url.Values{}
	q.Set("limit", "500")
	if labelSelector != "" {
		q.Set("labelSelector", labelSelector)
	}
	for {
		data, err := c.do(ctx, request{method: http.MethodGet, path: objectPath(apiVersion, r, namespace, ""), query: q, object: what})
		if err != nil {
			return nil, err
		}
		var list struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		for _, it := range list.Items {
			o, err := decodeObject(it, what)
			if err != nil {
				return nil, err
			}
			// Items of a list carry no apiVersion and kind.
			o.APIVersion, o.Kind = apiVersion, kind
			o.Content["apiVersion"], o.Content["kind"] = apiVersion, kind
			out = append(out, o)
		}
		if list.Metadata.Continue == "" {
			return out, nil
		}
		q.Set("continue", list.Metadata.Continue)
	}
}

// Delete deletes one object, its dependents in the background (as kubectl
// does). An object that is not there is no error. namespace "" is the
// client's namespace. The object may linger while finalizers run.
func (c *Client) Delete(ctx context.Context, apiVersion, kind, namespace, name string) error {
	r, m, err := c.locate(ctx, Meta{APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name})
	if err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	if name == "" {
		return fmt.Errorf("%s: no name given", m)
	}
	body := []byte(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`)
	_, err = c.do(ctx, request{
		method:      http.MethodDelete,
		path:        objectPath(apiVersion, r, m.Namespace, name),
		contentType: "application/json",
		body:        body,
		object:      m.String(),
	})
	if IsNotFound(err) {
		return nil
	}
	return err
}
