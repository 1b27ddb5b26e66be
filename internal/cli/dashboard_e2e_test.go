package cli

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds a Chromium (or Chrome) to drive; "" when there is
// none.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardInChromium opens the dashboard of a real `flowctl run
// --http` in headless Chromium, as a person would: the URL printed on
// stderr (with its token), the graph with every component, rates that
// move, a click that shows tapped events. It keeps a screenshot:
// $FLOWCTL_ARTIFACTS/dashboard.png when set (CI keeps it), else in the
// test's temporary directory.
func TestDashboardInChromium(t *testing.T) {
	chrome := needChromium(t)
	bin := flowctlBinary(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`
name: shop
sources:
  - name: orders
    type: generate
    config: {rate: 50, batch_size: 5, expr: '{"id": i, "amount": (i * 7919) % 10000}'}
processors:
  - {name: large, type: filter, inputs: [orders], config: {expr: "data.amount >= 5000"}}
  # Fails (division by zero) on one order in seven: they go to rejects.
  - {name: split, type: map, inputs: [large], config: {set: {share: "data.amount / (data.id % 7)"}}}
dead_letter: {name: rejects, type: file, config: {path: rejects.jsonl}}
sinks:
  - {name: archive, type: file, inputs: [split], config: {path: out.jsonl}}
`), 0o644)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "run", "-f", pf, "--http", addr, "--state-dir", t.TempDir(), "--socket", filepath.Join(dir, "run.sock"))
	stderrR, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var (
		mu     sync.Mutex
		stderr strings.Builder
	)
	urlCh := make(chan string, 1)
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		re := regexp.MustCompile(`dashboard: (http://\S+)`)
		sc := bufio.NewScanner(stderrR)
		for sc.Scan() {
			mu.Lock()
			stderr.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urlCh <- m[1]
			}
		}
	}()
	logs := func() string { mu.Lock(); defer mu.Unlock(); return stderr.String() }
	var url string
	select {
	case url = <-urlCh:
	case <-time.After(20 * time.Second):
		t.Fatalf("no dashboard URL on stderr:\n%s", logs())
	}
	if !strings.Contains(url, "?token=") || !strings.HasPrefix(url, "http://"+addr+"/") {
		t.Fatalf("dashboard URL %q", url)
	}
	// Without the token the same server refuses the page.
	if resp, err := http.Get("http://" + addr + "/"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/ without the token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	ctx := newBrowser(t, chrome)
	start := time.Now()
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nflowctl stderr:\n%s", what, err, logs())
		}
	}

	step("open the printed URL", chromedp.Navigate(url),
		chromedp.WaitVisible(`#graph g.node[data-name="archive"]`))
	t.Logf("page and graph shown %s after starting the browser", time.Since(start).Round(time.Millisecond))

	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#graph g.node text.name")).map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"archive", "large", "orders", "rejects", "split"}; !slices.Equal(names, want) {
		t.Fatalf("the graph shows %q, want %q", names, want)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`)); loc != "" {
		t.Errorf("the token stays in the address bar: %q", loc)
	}

	// The source's rate: > 0, then a later reading that differs.
	const rateJS = `(() => { const r = document.querySelector('#graph g.node[data-name="orders"] text.rates');
		const v = parseFloat(r && r.dataset.rateOut); return v > 0 ? [v, +document.body.dataset.samples] : null })()`
	first, err := chromedp.Run(ctx, chromedp.Poll[[]float64](rateJS, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("the source's rate never became > 0: %v\n%s", err, logs())
	}
	moved := fmt.Sprintf(`(() => { const v = %s; return v && v[1] > %v && v[0] !== %v ? v : null })()`,
		rateJS, first[1], strconv.FormatFloat(first[0], 'g', -1, 64))
	second, err := chromedp.Run(ctx, chromedp.Poll[[]float64](moved, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("the source's rate stayed %v: %v", first[0], err)
	}
	t.Logf("source rate %.2f/s at sample %v, then %.2f/s at sample %v", first[0], first[1], second[0], second[1])
	if second[0] < 10 || second[0] > 200 {
		t.Errorf("source at rate 50 shows %.1f events/s", second[0])
	}
	label, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#graph g.node[data-name="orders"] text.rates').textContent`))
	if !strings.Contains(label, "/s") {
		t.Errorf("rate label %q", label)
	}

	// The failures show on the map, in red, as dead-lettered events.
	trouble, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const e = document.querySelector('#graph g.node[data-name="split"] text.trouble');
		return e && /dead-lettered/.test(e.textContent) ? e.textContent : null })()`, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("the map's failures never showed: %v", err)
	}
	t.Logf("split shows %q", trouble)

	// A click on the filter opens its tap: events that passed it.
	step("click the filter and see its events",
		chromedp.Click(`#graph g.node[data-name="large"] rect.box`),
		chromedp.WaitVisible(`#panel`),
		chromedp.WaitVisible(`#tap-events li.event:nth-child(3)`))
	tapped, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#tap-events li.event")).map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range tapped {
		if !strings.Contains(ev, "orders:") || !strings.Contains(ev, `"amount"`) {
			t.Errorf("tapped event %q is not an order", ev)
		}
	}
	status, _ := chromedp.Run(ctx, chromedp.Text(`#tap-status`))
	if !strings.Contains(status, "large:out") {
		t.Errorf("tap status %q", status)
	}
	t.Logf("%d tapped events shown; %s", len(tapped), status)

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, "dashboard.png", png)

	// A reload that adds a sink redraws the graph with it.
	b, _ := os.ReadFile(pf)
	os.WriteFile(pf, append(b, []byte("  - {name: copy, type: file, inputs: [orders], config: {path: copy.jsonl}}\n")...), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	step("the graph after a reload", chromedp.WaitVisible(`#graph g.node[data-name="copy"]`),
		chromedp.WaitVisible(`#table tr[data-name="copy"]`))

	// The run stops promptly though the page still streams its tap.
	chromedp.Cancel(ctx)
	stopAt := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	<-scanDone
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 0) {
		t.Fatalf("flowctl after SIGINT: %v\n%s", err, logs())
	}
	if d := time.Since(stopAt); d > 5*time.Second {
		t.Errorf("flowctl took %s to stop", d)
	}
}

// newBrowser starts headless Chromium for the test: its context ends
// with the test (90 s at most).
func newBrowser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 720),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(cancelC)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

// saveScreenshot keeps png as name in $FLOWCTL_ARTIFACTS (CI keeps that
// directory), else in the test's temporary directory.
func saveScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	out := t.TempDir()
	if d := os.Getenv("FLOWCTL_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		out = d
	}
	shot := filepath.Join(out, name)
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}

// needChromium is the path of Chromium, or skips the test (fails it
// under CI=true, where .ci/run installs it).
func needChromium(t *testing.T) string {
	t.Helper()
	chrome := chromiumPath()
	if chrome == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no chromium on PATH under CI=true: .ci/run installs Debian's chromium package")
		}
		t.Skip("no chromium on PATH (apt-get install chromium)")
	}
	return chrome
}
