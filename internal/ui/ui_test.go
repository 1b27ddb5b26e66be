package ui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/spec"
)

const testToken = "s3cret-token"

// testGraph builds the graph of a small pipeline with a fan-in and a
// dead-letter sink.
func testGraph(t *testing.T) *graph.Graph {
	t.Helper()
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	os.WriteFile(pf, []byte(`
name: shop
sources:
  - {name: orders, type: generate, config: {count: 10, data: {k: 1}}}
  - {name: refunds, type: generate, config: {count: 10, data: {k: 1}}}
processors:
  - {name: large, type: filter, inputs: [orders, refunds], config: {expr: "true"}}
sinks:
  - {name: out, type: file, inputs: [large], config: {path: out.jsonl}}
  - {name: all, type: file, inputs: [orders], config: {path: all.jsonl}}
dead_letter: {name: dlq, type: file, config: {path: dlq.jsonl}}
`), 0o644)
	p, diags, err := spec.Load(pf, spec.Options{Registry: components.NewRegistry()})
	if err != nil || diags.HasErrors() {
		t.Fatalf("load: %v %v", err, diags)
	}
	g, err := graph.Build(p)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	g := testGraph(t)
	h, err := Handler(Options{
		Token: testToken,
		Graph: func() *graph.Graph { return g },
		Stats: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"pipeline":"shop","components":[]}`)
		}),
		Tap: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"watching":"`+r.URL.Query().Get("point")+`:out"}`+"\n")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestUIRefusesWithoutToken: the page, its files and its API answer 401
// without the token, or with a wrong one.
func TestUIRefusesWithoutToken(t *testing.T) {
	srv := testServer(t)
	for _, path := range []string{"/", "/ui/static/app.js", GraphPath, StatsPath, TapPath + "?point=orders", "/?token=wrong"} {
		for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + testToken}, {"Cookie": CookieName(srv.Listener.Addr().String()) + "=wrong"}} {
			resp, body := get(t, http.DefaultClient, srv.URL+path, hdr)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %v: %d, want 401", path, hdr, resp.StatusCode)
			}
			if strings.Contains(body, testToken) {
				t.Errorf("%s: the refusal shows the token", path)
			}
			if strings.HasPrefix(path, "/ui/api/") {
				var e struct{ Error string }
				if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
					t.Errorf("%s: 401 body %q is not a JSON error", path, body)
				}
			}
		}
	}
}

// TestUIBearerToken: with the Authorization header every endpoint answers.
func TestUIBearerToken(t *testing.T) {
	srv := testServer(t)
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	resp, body := get(t, http.DefaultClient, srv.URL+GraphPath, auth)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("graph: %d %s", resp.StatusCode, body)
	}
	var g GraphJSON
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	if g.Pipeline != "shop" || len(g.Nodes) != 6 {
		t.Fatalf("graph: %+v", g)
	}
	if resp, body := get(t, http.DefaultClient, srv.URL+StatsPath, auth); resp.StatusCode != 200 || !strings.Contains(body, `"pipeline":"shop"`) {
		t.Errorf("stats: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, http.DefaultClient, srv.URL+TapPath+"?point=large", auth); resp.StatusCode != 200 || !strings.Contains(body, `"watching":"large:out"`) {
		t.Errorf("tap: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, http.DefaultClient, srv.URL+"/", auth)
	if resp.StatusCode != 200 || !strings.Contains(body, "/ui/static/app.js") {
		t.Errorf("page: %d %s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("page CSP %q", csp)
	}
	for _, f := range []string{"app.js", "app.css"} {
		if resp, _ := get(t, http.DefaultClient, srv.URL+"/ui/static/"+f, auth); resp.StatusCode != 200 {
			t.Errorf("%s: %d", f, resp.StatusCode)
		}
	}
}

// TestUITokenURLSetsCookie: opening /?token=TOKEN (the printed URL) sets
// the cookie and redirects to /, which then loads like every API call.
func TestUITokenURLSetsCookie(t *testing.T) {
	srv := testServer(t)
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := get(t, c, srv.URL+"/?token="+testToken, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("%d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == CookieName(srv.Listener.Addr().String()) {
			cookie = ck
		}
	}
	if cookie == nil || cookie.Value != testToken || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", resp.Cookies())
	}
	hdr := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}
	for _, p := range []string{"/", StatsPath, GraphPath} {
		if resp, body := get(t, c, srv.URL+p, hdr); resp.StatusCode != 200 {
			t.Errorf("%s with the cookie: %d %s", p, resp.StatusCode, body)
		}
	}
	// Another port's cookie is not this one's.
	if CookieName("127.0.0.1:1") == CookieName(srv.Listener.Addr().String()) {
		t.Error("cookie names do not differ by port")
	}
}

// TestLayout: every edge goes right, columns are the longest path, the
// dead-letter sink is in the last column at the bottom, nothing overlaps.
func TestLayout(t *testing.T) {
	l := Layout(testGraph(t))
	at := map[string]NodeJSON{}
	for _, n := range l.Nodes {
		at[n.Name] = n
		if n.X < 0 || n.Y < 0 || n.X+n.W > l.Width || n.Y+n.H > l.Height {
			t.Errorf("%s outside the picture: %+v in %dx%d", n.Name, n, l.Width, l.Height)
		}
	}
	wantRank := map[string]int{"orders": 0, "refunds": 0, "large": 1, "all": 1, "out": 2, "dlq": 2}
	for name, r := range wantRank {
		if at[name].Rank != r {
			t.Errorf("%s rank %d, want %d", name, at[name].Rank, r)
		}
	}
	if at["dlq"].Y <= at["out"].Y {
		t.Errorf("the dead-letter sink is not below the sinks of its column: %+v", l.Nodes)
	}
	if !at["dlq"].DeadLetter || at["orders"].Runs != "generate" {
		t.Errorf("nodes: %+v", l.Nodes)
	}
	dead := 0
	for _, e := range l.Edges {
		if at[e.From].X >= at[e.To].X {
			t.Errorf("edge %s -> %s goes left", e.From, e.To)
		}
		if e.DeadLetter {
			dead++
			if e.To != "dlq" {
				t.Errorf("dead-letter edge to %s", e.To)
			}
		}
	}
	if dead != 3 { // orders, refunds, large; sinks retry by default
		t.Errorf("%d dead-letter edges, want 3: %+v", dead, l.Edges)
	}
	for i, a := range l.Nodes {
		for _, b := range l.Nodes[i+1:] {
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("%s and %s overlap", a.Name, b.Name)
			}
		}
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	for content, ok := range map[string]bool{"abc123\n": true, "  \n": false, "two words": false, "a;b": false} {
		f := filepath.Join(dir, "tok")
		os.WriteFile(f, []byte(content), 0o600)
		tok, err := ReadTokenFile(f)
		if ok != (err == nil) || (ok && tok != strings.TrimSpace(content)) {
			t.Errorf("%q: %q %v", content, tok, err)
		}
	}
	a, _ := NewToken()
	b, _ := NewToken()
	if a == b || len(a) < 40 {
		t.Errorf("tokens %q %q", a, b)
	}
}
