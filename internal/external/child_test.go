package external

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary re-execs itself as an external component:
// FLOWCTL_TEST_CHILD names the behaviour, and these variables tune it:
//
//	CRASH_AFTER  exit(2) after answering this many inputs, once per file in
//	             CRASH_MARK (the file is created on the crash, so the next
//	             incarnation runs normally)
//	HANG_AFTER   stop answering after this many inputs, same marker rule
func TestMain(m *testing.M) {
	if mode := os.Getenv("FLOWCTL_TEST_CHILD"); mode != "" {
		runChild(mode)
		os.Exit(0)
	}
	// The flowctl runs the tests start keep their checkpoints apart from
	// the user's.
	dir, err := os.MkdirTemp("", "flowctl-external-state")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_STATE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runChild(mode string) {
	switch mode {
	case "stdio":
		stdioChild()
	case "stdio-source":
		n, _ := strconv.Atoi(os.Getenv("COUNT"))
		w := bufio.NewWriter(os.Stdout)
		for i := range n {
			fmt.Fprintf(w, "{\"data\":{\"n\":%d}}\n", i)
		}
		w.Flush()
	case "exit1":
		fmt.Fprintln(os.Stderr, "boom: cannot start")
		os.Exit(1)
	case "env":
		fmt.Fprintln(os.Stderr, "starting")
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			var in struct{ Seq uint64 }
			json.Unmarshal(sc.Bytes(), &in)
			env := map[string]string{}
			for _, kv := range os.Environ() {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			wd, _ := os.Getwd()
			env["_WD"] = wd
			b, _ := json.Marshal(env)
			fmt.Printf("{\"seq\":%d,\"data\":%s,\"done\":true}\n", in.Seq, b)
		}
	case "http":
		httpChild()
	}
}

// markOnce reports whether the marker file did not exist, creating it.
func markOnce() bool {
	f, err := os.OpenFile(os.Getenv("CRASH_MARK"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func stdioChild() {
	crashAfter, _ := strconv.Atoi(os.Getenv("CRASH_AFTER"))
	hangAfter, _ := strconv.Atoi(os.Getenv("HANG_AFTER"))
	r := bufio.NewReaderSize(os.Stdin, 1<<20)
	w := bufio.NewWriter(os.Stdout)
	n := 0
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			break
		}
		var in struct {
			Seq   uint64
			Event struct {
				ID   string
				Data map[string]any
			}
		}
		if err := json.Unmarshal(line, &in); err != nil {
			fmt.Fprintln(os.Stderr, "bad input:", err)
			os.Exit(3)
		}
		n++
		if crashAfter > 0 && n > crashAfter && markOnce() {
			w.Flush()
			fmt.Fprintln(os.Stderr, "crashing on purpose")
			os.Exit(2)
		}
		if hangAfter > 0 && n > hangAfter && markOnce() {
			w.Flush()
			select {}
		}
		switch {
		case in.Event.Data["fail"] == true:
			fmt.Fprintf(w, "{\"seq\":%d,\"error\":\"asked to fail\",\"permanent\":true}\n", in.Seq)
		case in.Event.Data["split"] == true:
			fmt.Fprintf(w, "{\"seq\":%d,\"event\":{\"id\":\"%s-a\",\"type\":\"part\"}}\n", in.Seq, in.Event.ID)
			fmt.Fprintln(w) // a blank line is ignored
			fmt.Fprintf(w, "{\"seq\":%d,\"event\":{\"id\":\"%s-b\",\"type\":\"part\"}}\n", in.Seq, in.Event.ID)
			fmt.Fprintf(w, "{\"seq\":%d,\"done\":true}\n", in.Seq)
		case in.Event.Data["drop"] == true:
			fmt.Fprintf(w, "{\"seq\":%d,\"done\":true}\n", in.Seq)
		default:
			d := in.Event.Data
			d["seen"] = true
			b, _ := json.Marshal(d)
			fmt.Fprintf(w, "{\"seq\":%d,\"data\":%s,\"done\":true}\n", in.Seq, b)
		}
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
	w.Flush()
}

func httpChild() {
	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// A component that checks FLOWCTL_STREAM_TOKEN, as
		// docs/protocols.md suggests: flowctl must send it.
		if tok := os.Getenv("FLOWCTL_STREAM_TOKEN"); tok == "" || r.Header.Get("Authorization") != "Bearer "+tok {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		var req struct {
			Events []struct {
				ID   string
				Data map[string]any
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		type result struct {
			Events []map[string]any `json:"events,omitempty"`
			Error  string           `json:"error,omitempty"`
		}
		var resp struct {
			Results []result `json:"results"`
		}
		for _, ev := range req.Events {
			if ev.Data["fail"] == true {
				resp.Results = append(resp.Results, result{Error: "asked to fail"})
				continue
			}
			ev.Data["seen"] = true
			resp.Results = append(resp.Results, result{Events: []map[string]any{{"data": ev.Data}}})
		}
		json.NewEncoder(w).Encode(resp)
	})
	srv := &http.Server{Addr: os.Getenv("PORT"), ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
