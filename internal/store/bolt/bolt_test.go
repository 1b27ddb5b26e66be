package bolt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/bolt"
	"github.com/flowctl/flowctl/internal/store/boltfile"
	"github.com/flowctl/flowctl/internal/store/storetest"
)

// holdEnv makes the test binary, re-executed, act as a second flowctl
// server: open the store at the path it names, print "ready", and hold it
// until stdin closes.
const holdEnv = "FLOWCTL_STORE_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		if err := s.Close(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func openTemp(t *testing.T) (*bolt.Store, string) { return openTempB(t) }

func openTempB(t testing.TB) (*bolt.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), bolt.FileName)
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

// snapshot is everything a store holds, read through its API.
type snapshot struct {
	Pipelines     []store.Pipeline
	Registrations []store.Registration
	Runs          []store.Run
}

func take(t *testing.T, s store.Store) snapshot {
	t.Helper()
	ctx := context.Background()
	ps, err1 := s.ListPipelines(ctx)
	regs, err2 := s.ListRegistrations(ctx, "")
	runs, err3 := s.ListRuns(ctx, "", 0)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	return snapshot{ps, regs, runs}
}

func TestReopenPersists(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for _, p := range []store.Pipeline{
		{Name: "orders", Hash: "h1", Spec: []byte("a"), Dir: "/a", AppliedAt: t0},
		{Name: "orders", Hash: "h2", Spec: []byte("b"), Dir: "/a", AppliedAt: t0.Add(time.Minute)},
		{Name: "gone", Hash: "g1", Spec: []byte("g"), AppliedAt: t0},
		{Name: "gone", Hash: "g2", Spec: []byte("g2"), AppliedAt: t0},
	} {
		if _, err := s.PutPipeline(ctx, p, store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	steps := []error{
		s.DeletePipeline(ctx, "gone"),
		s.UpdatePipelineStatus(ctx, "orders", store.PipelineStatus{
			ObservedRevision: 2, Phase: store.PhaseRunning, Ready: true,
			Conditions: []store.Condition{{Type: "Ready", Status: "True", LastTransition: t0}},
		}),
		s.PutRegistration(ctx, store.Registration{ID: "orders.enrich", Pipeline: "orders", Role: "processor",
			Metadata: map[string]string{"k": "v"}, TTL: 3 * time.Second, RegisteredAt: t0}),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	run, err := s.StartRun(ctx, store.Run{Pipeline: "orders", Revision: 2, PID: 42, StartedAt: t0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	run.Counters = map[string]int64{"events_out": 7}
	if err := s.UpdateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	before := take(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".pid"); !os.IsNotExist(err) {
		t.Errorf("pid file left after Close: %v", err)
	}

	s, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := take(t, s); !reflect.DeepEqual(after, before) {
		t.Fatalf("after reopen:\n got  %+v\n want %+v", after, before)
	}
	// Counters continue: the next run id and the deleted pipeline's
	// revision.
	r, err := s.StartRun(ctx, store.Run{Pipeline: "orders"}, 0)
	if err != nil || r.ID != 2 {
		t.Fatalf("next run after reopen = %+v, %v; want id 2", r, err)
	}
	res, err := s.PutPipeline(ctx, store.Pipeline{Name: "gone", Hash: "g2"}, store.NoRevision)
	if err != nil || res.Pipeline.Revision != 3 {
		t.Fatalf("re-apply of deleted after reopen = %+v, %v; want revision 3", res, err)
	}
}

// writeRaw puts raw values into a bbolt file, creating buckets.
func writeRaw(t *testing.T, path string, kv map[[2]string]string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		for k, v := range kv {
			b, err := tx.CreateBucketIfNotExists([]byte(k[0]))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k[1]), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	const wantMsg = "written by a newer flowctl (schema v3, this binary reads up to v2): upgrade flowctl"

	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), bolt.FileName)
		writeRaw(t, path, map[[2]string]string{
			{"meta", "schema_version"}: "3",
			{"pipelines", "orders"}:    `{"v":3,"data":{"name":"orders","shiny":true}}`,
		})
		before, _ := os.ReadFile(path)
		_, err := bolt.Open(path, bolt.Options{})
		if !errors.Is(err, store.ErrNewerSchema) || !strings.Contains(err.Error(), wantMsg) {
			t.Fatalf("Open = %v; want ErrNewerSchema saying %q", err, wantMsg)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Error("refusing a newer file changed it")
		}
	})

	t.Run("value", func(t *testing.T) {
		ctx := context.Background()
		s, path := openTemp(t)
		if _, err := s.PutPipeline(ctx, store.Pipeline{Name: "old", Hash: "h"}, store.AnyRevision); err != nil {
			t.Fatal(err)
		}
		s.Close()
		writeRaw(t, path, map[[2]string]string{
			{"pipelines", "orders"}:     `{"v":3,"data":{"name":"orders"}}`,
			{"registrations", "c1"}:     `{"v":3,"data":{}}`,
			{"meta", "unrelated_extra"}: "x",
		})
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for name, call := range map[string]func() error{
			"GetPipeline":   func() error { _, err := s.GetPipeline(ctx, "orders"); return err },
			"ListPipelines": func() error { _, err := s.ListPipelines(ctx); return err },
			"PutPipeline": func() error {
				_, err := s.PutPipeline(ctx, store.Pipeline{Name: "orders", Hash: "x"}, store.AnyRevision)
				return err
			},
			"ListRegistrations": func() error { _, err := s.ListRegistrations(ctx, ""); return err },
		} {
			if err := call(); !errors.Is(err, store.ErrNewerSchema) || !strings.Contains(err.Error(), wantMsg) {
				t.Errorf("%s = %v; want ErrNewerSchema saying %q", name, err, wantMsg)
			}
		}
		if _, err := s.GetPipeline(ctx, "old"); err != nil {
			t.Errorf("a readable record became unreadable: %v", err)
		}
	})
}

func TestOpenRefusesForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	writeRaw(t, path, map[[2]string]string{{"widgets", "a"}: "1"})
	_, err := bolt.Open(path, bolt.Options{})
	if !errors.Is(err, boltfile.ErrForeign) || !strings.Contains(err.Error(), "server store "+path) {
		t.Fatalf("Open = %v; want ErrForeign naming the file", err)
	}
	if err := os.WriteFile(path, []byte("plain text"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(path, bolt.Options{}); !errors.Is(err, boltfile.ErrCorrupt) {
		t.Fatalf("a text file: Open = %v; want ErrCorrupt", err)
	}
	// Ours in its marker, but without a schema version.
	path = filepath.Join(t.TempDir(), "nover.db")
	writeRaw(t, path, map[[2]string]string{{"meta", "other"}: "1", {"pipelines", "a"}: "{}"})
	if _, err := bolt.Open(path, bolt.Options{}); err == nil || !strings.Contains(err.Error(), "not a flowctl data file") {
		t.Fatalf("Open = %v; want a not-a-flowctl-file error", err)
	}
}

// TestOpenRefusesDamagedStore damages a real store and checks that Open
// refuses it with a clear error, without a panic and without touching it.
func TestOpenRefusesDamagedStore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"zero-length", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"pages overwritten", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			const ps = 4096
			for off := 2 * ps; off+64 <= len(b); off += ps {
				for i := 16; i < 64; i++ {
					b[off+i] ^= 0xff
				}
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := openTemp(t)
			for i := range 50 {
				p := store.Pipeline{Name: fmt.Sprintf("p%02d", i), Hash: "h", Spec: []byte(strings.Repeat("spec ", 200))}
				if _, err := s.PutPipeline(ctx, p, store.AnyRevision); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, path)
			before, _ := os.ReadFile(path)
			_, err := bolt.Open(path, bolt.Options{})
			if !errors.Is(err, boltfile.ErrCorrupt) {
				t.Fatalf("Open = %v; want ErrCorrupt", err)
			}
			for _, want := range []string{"server store " + path, "move it aside or restore it from a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Error("refusing a damaged file changed it")
			}
		})
	}
}

func TestOpenDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "flowctl")
	s, err := bolt.OpenDir(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode = %v, %v; want 0700", fi.Mode(), err)
	}
	if s.Path() != filepath.Join(dir, bolt.FileName) {
		t.Fatalf("Path = %q", s.Path())
	}
	fi, err = os.Stat(s.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("data file mode = %v, %v; want 0600", fi.Mode(), err)
	}
}

// holder is a second process holding the store open.
type holder struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
}

func startHolder(t *testing.T, path string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	return h
}

func TestSecondServerRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		// release lets go of the holder's lock.
		release func(t *testing.T, h *holder)
		// pidFileAfter says whether the holder's pid file survives.
		pidFileAfter bool
	}{
		{"clean exit", func(t *testing.T, h *holder) {
			_ = h.stdin.Close()
			if err := h.cmd.Wait(); err != nil {
				t.Fatalf("holder: %v", err)
			}
		}, false},
		{"killed", func(t *testing.T, h *holder) {
			_ = h.cmd.Process.Signal(syscall.SIGKILL)
			_ = h.cmd.Wait()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), bolt.FileName)
			h := startHolder(t, path)
			pid := h.cmd.Process.Pid

			start := time.Now()
			_, err := bolt.Open(path, bolt.Options{LockTimeout: 200 * time.Millisecond})
			want := fmt.Sprintf("data dir in use by another flowctl server (pid %d): %s is locked", pid, filepath.Dir(path))
			if !errors.Is(err, bolt.ErrInUse) || !strings.Contains(err.Error(), want) {
				t.Fatalf("second Open = %v; want ErrInUse saying %q", err, want)
			}
			if waited := time.Since(start); waited > 2*time.Second {
				t.Fatalf("second Open took %v; the lock timeout is 200ms", waited)
			}

			tc.release(t, h)
			_, statErr := os.Stat(path + ".pid")
			if got := statErr == nil; got != tc.pidFileAfter {
				t.Fatalf("pid file present = %v, want %v", got, tc.pidFileAfter)
			}
			// The lock dies with its process; a stale pid file is replaced.
			s, err := bolt.Open(path, bolt.Options{LockTimeout: 2 * time.Second})
			if err != nil {
				t.Fatalf("Open after the holder let go: %v", err)
			}
			defer s.Close()
			b, _ := os.ReadFile(path + ".pid")
			if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
				t.Fatalf("pid file = %q, want ours (%d)", b, os.Getpid())
			}
		})
	}
}

// TestPipelineWithoutCreatedAt: a v2 pipeline written before CreatedAt was
// kept reads back as created when its revision was applied, keeps that
// across later revisions, and the schema version stays 2 (an optional
// field needs no migration).
func TestPipelineWithoutCreatedAt(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	s.Close()
	writeRaw(t, path, map[[2]string]string{
		{"pipelines", "orders"}: `{"v":2,"data":{"name":"orders","revision":4,"hash":"h4","spec":"eA==","dir":"/srv",` +
			`"applied_at":"2026-10-01T10:00:00+02:00","status":{"observed_revision":4,"phase":"Running","ready":true}}}`,
	})
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applied := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	got, err := s.GetPipeline(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(applied) || got.CreatedAt != got.AppliedAt || got.Revision != 4 {
		t.Fatalf("old record read back as %+v; want CreatedAt = AppliedAt = %v", got, applied)
	}
	res, err := s.PutPipeline(ctx, store.Pipeline{Name: "orders", Hash: "h5", Spec: []byte("y")}, 4)
	if err != nil || res.Pipeline.Revision != 5 || res.Pipeline.CreatedAt != applied {
		t.Fatalf("next revision of the old record = %+v, %v; want revision 5 created at %v", res.Pipeline, err, applied)
	}
	if got, _ := s.GetPipeline(ctx, "orders"); got.CreatedAt != applied {
		t.Fatalf("stored CreatedAt after the next revision = %v, want %v", got.CreatedAt, applied)
	}
	s.Close()
	if v := schemaVersion(t, path); v != "2" {
		t.Fatalf("schema version = %q, want 2", v)
	}
}

// schemaVersion reads the schema version of the closed data file at path.
func schemaVersion(t *testing.T, path string) string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	_ = db.View(func(tx *bbolt.Tx) error {
		v = string(tx.Bucket([]byte("meta")).Get([]byte("schema_version")))
		return nil
	})
	return v
}
