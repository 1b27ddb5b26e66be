package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParquetSinkHTTPSyncKill9E2E: an http source with sync: true answers
// 200 only once the sinks wrote the request's events, and cannot send them
// again. So every event answered 200 must be in the Parquet output after a
// SIGKILL right after the answers (before a checkpoint could fsync the
// journal) and a resumed run.
func TestParquetSinkHTTPSyncKill9E2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`name: pqhttp
sources:
  - {name: in, type: http, config: {address: "`+addr+`", sync: true}}
sinks:
  - name: store
    type: parquet
    inputs: [in]
    config:
      path: out
      schema:
        - {name: id, type: int64, optional: false}
`), 0o644)
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A checkpoint every hour: none comes between the answers and the
	// kill, so only what Write itself left on disk can hold the rows.
	args := []string{"run", "-f", pf, "--state-dir", state, "--checkpoint-interval", "1h"}

	post := func(id int) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/", strings.NewReader(fmt.Sprintf(`{"id":%d}`, id)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	first := startFlowctl(t, bin, nil, args...)
	// The first answered request says the source listens.
	for i := 0; ; i++ {
		code, err := post(0)
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-first.exited:
			t.Fatalf("flowctl ended (%v) before it answered:\n%s", first.err, first.stderr.String())
		case <-ctx.Done():
			t.Fatalf("no 200 after %d tries (last %d, %v):\n%s", i, code, err, first.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	const total = 50
	for id := 1; id < total; id++ {
		if code, err := post(id); err != nil || code != http.StatusOK {
			t.Fatalf("event %d: %d, %v\n%s", id, code, err, first.stderr.String())
		}
	}
	first.kill9(t)

	second := startFlowctl(t, bin, nil, args...)
	for i := 0; ; i++ {
		code, err := post(total)
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-second.exited:
			t.Fatalf("the resumed run ended (%v) before it answered:\n%s", second.err, second.stderr.String())
		case <-ctx.Done():
			t.Fatalf("the resumed run: no 200 after %d tries (last %d, %v):\n%s", i, code, err, second.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	second.stop(t, ctx)

	seen := map[int64]int{}
	names, _ := filepath.Glob(filepath.Join(dir, "out", "part-*.parquet"))
	for _, name := range names {
		for _, id := range readParquetIDs(t, name) {
			seen[id]++
		}
	}
	var lost []int64
	for id := int64(0); id <= total; id++ {
		if seen[id] == 0 {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d events answered 200 are not in the output after the kill: %v\nresumed run:\n%s", len(lost), lost, second.stderr.String())
	}
}
