package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/flowctl/flowctl/internal/graph"
)

//go:embed static
var staticFiles embed.FS

// Paths Handler serves.
const (
	// GraphPath serves the pipeline's graph laid out (GraphJSON).
	GraphPath = "/ui/api/graph"
	// StatsPath serves the run's live counters (Options.Stats).
	StatsPath = "/ui/api/stats"
	// TapPath streams a tap (Options.Tap): newline-delimited JSON records.
	TapPath = "/ui/api/tap"
	// staticPath prefixes the page's scripts and styles.
	staticPath = "/ui/static/"
)

// Options are what the dashboard of one run shows.
type Options struct {
	// Token is required of every request (see the package doc). It must
	// not be empty.
	Token string
	// Graph returns the graph the run runs now (it changes on reload).
	Graph func() *graph.Graph
	// Stats serves the live counters as JSON (the run socket's /v1/stats).
	Stats http.Handler
	// Tap serves tap streams (tap.Handler).
	Tap http.Handler
}

// NewToken returns a random token: 32 bytes, URL-safe base64.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ReadTokenFile reads a token from path: its content without surrounding
// white space, which must not be empty nor hold white space or control
// characters (it goes in a URL and a cookie).
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty: write the token in it", path)
	}
	for _, r := range tok {
		if r <= ' ' || r == 0x7f || r == ';' || r == ',' || r == '"' || r == '\\' {
			return "", fmt.Errorf("%s: the token must be one word of printable characters (no spaces, quotes, commas or semicolons)", path)
		}
	}
	return tok, nil
}

// Handler serves the dashboard: the page at /, its files under
// /ui/static/, and GraphPath, StatsPath and TapPath. Every request needs
// the token.
func Handler(o Options) (http.Handler, error) {
	if o.Token == "" {
		return nil, errors.New("ui: no token")
	}
	if o.Graph == nil || o.Stats == nil || o.Tap == nil {
		return nil, errors.New("ui: Graph, Stats and Tap are all needed")
	}
	mux := http.NewServeMux()
	if err := servePage(mux); err != nil {
		return nil, err
	}
	mux.HandleFunc("GET "+InfoPath, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, Info{Mode: "run"}) })
	mux.HandleFunc("GET "+GraphPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Layout(o.Graph()))
	})
	mux.Handle("GET "+StatsPath, o.Stats)
	mux.Handle("GET "+TapPath, o.Tap)
	return &guard{token: []byte(o.Token), next: mux}, nil
}

// servePage adds the page (/) and its files (/ui/static/) to mux.
func servePage(mux *http.ServeMux) error {
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return err
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		return err
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(index)
	})
	mux.Handle("GET "+staticPath, http.StripPrefix(staticPath, http.FileServerFS(static)))
	return nil
}

// guard lets through the requests that carry the token and answers the
// others 401. /?token=TOKEN sets the cookie and redirects to /, so the
// token leaves the address bar and the history.
type guard struct {
	token []byte
	next  http.Handler
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	if q := r.URL.Query(); r.URL.Path == "/" && q.Has("token") {
		if !g.valid(q.Get("token")) {
			g.refuse(w, r, "the token in the address is not this run's")
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name: CookieName(r.Host), Value: string(g.token), Path: "/",
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		if tok, ok := strings.CutPrefix(auth, "Bearer "); ok && g.valid(tok) {
			g.next.ServeHTTP(w, r)
			return
		}
		g.refuse(w, r, "the Authorization header does not carry this run's token")
		return
	}
	if c, err := r.Cookie(CookieName(r.Host)); err == nil && g.valid(c.Value) {
		g.next.ServeHTTP(w, r)
		return
	}
	g.refuse(w, r, "no token")
}

func (g *guard) valid(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), g.token) == 1
}

// refuse answers 401: JSON for the API, a short page for a browser.
func (g *guard) refuse(w http.ResponseWriter, r *http.Request, why string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(r.URL.Path, "/ui/api/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		b, _ := json.Marshal(map[string]string{"error": why + ": send Authorization: Bearer TOKEN (the token is in the URL flowctl printed on stderr)"})
		w.Write(append(b, '\n'))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintf(w, `<!doctype html><title>flowctl: token needed</title><p>%s. Open the dashboard with the address flowctl printed on its standard error when it started: <code>http://%s/?token=…</code></p>`,
		htmlEscape(why), htmlEscape(r.Host))
}

// CookieName is the cookie that carries the token for host: one per port,
// since browsers share cookies between the ports of a host and two runs
// may serve dashboards on one machine.
func CookieName(host string) string {
	_, port, err := net.SplitHostPort(host)
	if err != nil || port == "" {
		port = "80"
	}
	var b strings.Builder
	for _, r := range port {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return "flowctl_ui_" + b.String()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}
