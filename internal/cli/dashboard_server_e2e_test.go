package cli

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestServerUIInChromium: `flowctl server --ui` shows the applied
// pipelines; picking one shows its graph with live rates and its runs,
// and a component's panel its tap and its logs.
func TestServerUIInChromium(t *testing.T) {
	chrome := needChromium(t)
	bin := flowctlBinary(t)
	dataDir := t.TempDir()
	uiAddr := freeAddr(t)
	out := &syncBuffer{}
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--grace", "5s", "--ui", uiAddr)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server output:\n%s", out.String())
		}
	}()
	re := regexp.MustCompile(`flowctl server: dashboard: (http://\S+)`)
	var url string
	waitFor(t, 20*time.Second, "the dashboard URL", func() bool {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
		return url != ""
	})
	if resp, err := http.Get("http://" + uiAddr + "/ui/api/pipelines"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pipelines without the token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	c := dialControl(t, socketOf(dataDir))
	waitFor(t, 15*time.Second, "the server to answer", func() bool { return strings.Contains(out.String(), "serving on") })
	dir := t.TempDir()
	apply(t, c, dir, filepath.Join(dir, "shop.yaml"), `
name: shop
sources:
  - {name: orders, type: generate, config: {rate: 40, batch_size: 4, expr: '{"id": i, "amount": (i * 7919) % 10000}'}}
processors:
  - {name: large, type: filter, inputs: [orders], config: {expr: "data.amount >= 5000"}}
sinks:
  - {name: archive, type: file, inputs: [large], config: {path: out.jsonl}}
`)
	apply(t, c, dir, filepath.Join(dir, "audit.yaml"), `
name: audit
sources: [{name: ticks, type: generate, config: {count: 10, data: {k: 1}}}]
sinks: [{name: log, type: file, inputs: [ticks], config: {path: audit.jsonl}}]
`)

	ctx := newBrowser(t, chrome)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("open the printed URL and see the pipelines", chromedp.Navigate(url),
		chromedp.WaitVisible(`#pipelines li[data-name="audit"]`),
		chromedp.WaitVisible(`#pipelines li[data-name="shop"]`))
	step("pick shop", chromedp.Click(`#pipelines li[data-name="shop"]`),
		chromedp.WaitVisible(`#graph g.node[data-name="archive"]`))
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#graph g.node text.name")).map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"archive", "large", "orders"}; !slices.Equal(names, want) {
		t.Fatalf("the graph of shop shows %q, want %q", names, want)
	}
	rate, err := chromedp.Run(ctx, chromedp.Poll[float64](`(() => { const r = document.querySelector('#graph g.node[data-name="orders"] text.rates');
		const v = parseFloat(r && r.dataset.rateOut); return v > 0 ? v : null })()`, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("the rate of shop's source never showed: %v", err)
	}
	t.Logf("shop's source at %.1f events/s", rate)
	step("the runs of shop", chromedp.WaitVisible(`#runs-table tr[data-run="1"] td.state-Started`))
	step("click the filter: its tap and its logs",
		chromedp.Click(`#graph g.node[data-name="large"] rect.box`),
		chromedp.WaitVisible(`#tap-events li.event:nth-child(3)`),
		chromedp.WaitVisible(`#logs li.log`))
	status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("tap-status").textContent`))
	if !strings.Contains(status, "large:out") {
		t.Errorf("tap status %q", status)
	}
	logs, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#logs li")).map(e => e.textContent)`))
	t.Logf("the panel shows %d log lines of large: %q", len(logs), logs)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, "dashboard-server.png", png)

	// The finished pipeline: its graph, no live run, its completed run.
	step("pick audit", chromedp.Click(`#pipelines li[data-name="audit"]`),
		chromedp.WaitVisible(`#graph g.node[data-name="ticks"]`),
		chromedp.WaitVisible(`#runs-table tr[data-run="1"] td.state-Completed`))

	chromedp.Cancel(ctx)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not stop on SIGTERM")
	}
}
