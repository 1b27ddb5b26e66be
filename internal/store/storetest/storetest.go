package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/store"
)

// Opener returns a fresh, empty, open store. Run closes it when the case
// ends (a case that closes it itself is fine).
type Opener func(t *testing.T) store.Store

// testCase is one named case of the suite.
type testCase struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// Run runs every case of the suite, each on its own fresh store from open.
func Run(t *testing.T, open Opener) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("close: %v", err)
				}
			})
			tc.run(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// pipe builds a pipeline to apply.
func pipe(name, hash string) store.Pipeline {
	return store.Pipeline{
		Name: name, Hash: hash, Spec: []byte("name: " + name + " # " + hash + "\n"),
		Dir: "/srv/" + name, AppliedAt: t0,
	}
}

func mustPut(t *testing.T, s store.Store, p store.Pipeline, expected int64) store.PutResult {
	t.Helper()
	res, err := s.PutPipeline(context.Background(), p, expected)
	if err != nil {
		t.Fatalf("PutPipeline(%q, hash %q, expected %d): %v", p.Name, p.Hash, expected, err)
	}
	return res
}

func mustGet(t *testing.T, s store.Store, name string) store.Pipeline {
	t.Helper()
	p, err := s.GetPipeline(context.Background(), name)
	if err != nil {
		t.Fatalf("GetPipeline(%q): %v", name, err)
	}
	return p
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

func names(ps []store.Pipeline) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func runIDs(rs []store.Run) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s/%d", r.Pipeline, r.ID))
	}
	return out
}

var ctx = context.Background()

var cases = []testCase{
	{"pipeline/create", func(t *testing.T, s store.Store) {
		in := pipe("orders", "h1")
		res := mustPut(t, s, in, store.NoRevision)
		want := in
		want.Revision = 1
		want.CreatedAt = in.AppliedAt
		want.Status = store.PipelineStatus{Phase: store.PhasePending}
		equal(t, "result", res, store.PutResult{Pipeline: want, Created: true, Changed: true})
		equal(t, "stored", mustGet(t, s, "orders"), want)
	}},
	{"pipeline/zero AppliedAt means now", func(t *testing.T, s store.Store) {
		p := pipe("orders", "h1")
		p.AppliedAt = time.Time{}
		before := time.Now().Add(-time.Second)
		got := mustPut(t, s, p, store.AnyRevision).Pipeline
		if got.AppliedAt.Before(before) || got.AppliedAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("AppliedAt = %v, want about now", got.AppliedAt)
		}
		equal(t, "stored AppliedAt", mustGet(t, s, "orders").AppliedAt, got.AppliedAt)
	}},
	{"pipeline/created at", func(t *testing.T, s store.Store) {
		at := func(d time.Duration) store.Pipeline {
			p := pipe("orders", fmt.Sprintf("h%d", d))
			p.AppliedAt = t0.Add(d)
			p.CreatedAt = t0.Add(-time.Hour) // ignored
			return p
		}
		created := func(what string, got store.Pipeline, want time.Time) {
			t.Helper()
			if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
				t.Fatalf("CreatedAt %s = %v, want %v", what, got.CreatedAt, want)
			}
			created := mustGet(t, s, "orders").CreatedAt
			if !created.Equal(want) {
				t.Fatalf("stored CreatedAt %s = %v, want %v", what, created, want)
			}
		}
		created("of revision 1", mustPut(t, s, at(0), store.NoRevision).Pipeline, t0)
		created("of revision 2", mustPut(t, s, at(time.Minute), 1).Pipeline, t0)
		if err := s.UpdatePipelineStatus(ctx, "orders", store.PipelineStatus{Phase: store.PhaseRunning}); err != nil {
			t.Fatal(err)
		}
		created("after a status update", mustGet(t, s, "orders"), t0)
		if err := s.DeletePipeline(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		// Created again after the delete: a new CreatedAt, though the
		// revisions continue.
		res := mustPut(t, s, at(time.Hour), store.NoRevision)
		if res.Pipeline.Revision != 3 {
			t.Fatalf("revision after delete = %d, want 3", res.Pipeline.Revision)
		}
		created("after delete", res.Pipeline, t0.Add(time.Hour))
		// A zero AppliedAt means now, for both.
		p := pipe("payments", "h1")
		p.AppliedAt = time.Time{}
		got := mustPut(t, s, p, store.NoRevision).Pipeline
		if got.CreatedAt.IsZero() || !got.CreatedAt.Equal(got.AppliedAt) {
			t.Fatalf("CreatedAt %v, AppliedAt %v: want the same time, now", got.CreatedAt, got.AppliedAt)
		}
	}},
	{"pipeline/same hash is a no-op", func(t *testing.T, s store.Store) {
		first := mustPut(t, s, pipe("orders", "h1"), store.AnyRevision).Pipeline
		again := pipe("orders", "h1")
		again.Spec = []byte("different bytes, same normalised hash")
		again.Dir = "/elsewhere"
		again.AppliedAt = t0.Add(time.Hour)
		for _, expected := range []int64{store.AnyRevision, 1} {
			res := mustPut(t, s, again, expected)
			equal(t, "result", res, store.PutResult{Pipeline: first})
		}
		equal(t, "stored", mustGet(t, s, "orders"), first)
	}},
	{"pipeline/hash change bumps revision and keeps status", func(t *testing.T, s store.Store) {
		mustPut(t, s, pipe("orders", "h1"), store.AnyRevision)
		st := store.PipelineStatus{ObservedRevision: 1, Phase: store.PhaseRunning, Ready: true}
		if err := s.UpdatePipelineStatus(ctx, "orders", st); err != nil {
			t.Fatal(err)
		}
		for i, h := range []string{"h2", "h3", "h1"} {
			p := pipe("orders", h)
			p.AppliedAt = t0.Add(time.Duration(i+1) * time.Minute)
			res := mustPut(t, s, p, store.AnyRevision)
			want := p
			want.Revision = int64(i + 2)
			want.CreatedAt = t0
			want.Status = st
			equal(t, "result "+h, res, store.PutResult{Pipeline: want, Changed: true})
			equal(t, "stored "+h, mustGet(t, s, "orders"), want)
		}
	}},
	{"pipeline/expected revision", func(t *testing.T, s store.Store) {
		mustPut(t, s, pipe("orders", "h1"), store.NoRevision)
		mustPut(t, s, pipe("orders", "h2"), 1)
		for _, tc := range []struct {
			name     string
			p        store.Pipeline
			expected int64
			want     error
		}{
			{"must not exist but does", pipe("orders", "h3"), store.NoRevision, store.ErrConflict},
			{"stale", pipe("orders", "h3"), 1, store.ErrConflict},
			{"from the future", pipe("orders", "h3"), 3, store.ErrConflict},
			{"stale with same hash", pipe("orders", "h2"), 1, store.ErrConflict},
			{"missing pipeline", pipe("payments", "h1"), 1, store.ErrConflict},
		} {
			_, err := s.PutPipeline(ctx, tc.p, tc.expected)
			wantErr(t, tc.name, err, tc.want)
		}
		got := mustGet(t, s, "orders")
		if got.Revision != 2 || got.Hash != "h2" {
			t.Fatalf("after conflicts: revision %d hash %q, want 2 h2", got.Revision, got.Hash)
		}
		if _, err := s.GetPipeline(ctx, "payments"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("conflicting create stored something: %v", err)
		}
		if res := mustPut(t, s, pipe("orders", "h3"), 2); res.Pipeline.Revision != 3 {
			t.Fatalf("revision = %d, want 3", res.Pipeline.Revision)
		}
	}},
	{"pipeline/invalid input", func(t *testing.T, s store.Store) {
		for _, tc := range []struct {
			name     string
			p        store.Pipeline
			expected int64
		}{
			{"empty name", pipe("", "h1"), store.AnyRevision},
			{"empty hash", pipe("orders", ""), store.AnyRevision},
			{"bad expected", pipe("orders", "h1"), -2},
		} {
			_, err := s.PutPipeline(ctx, tc.p, tc.expected)
			if err == nil || errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: got %v, want a validation error", tc.name, err)
			}
		}
		ps, err := s.ListPipelines(ctx)
		if err != nil || len(ps) != 0 {
			t.Fatalf("ListPipelines = %v, %v; want none", names(ps), err)
		}
	}},
	{"pipeline/get missing", func(t *testing.T, s store.Store) {
		_, err := s.GetPipeline(ctx, "nope")
		wantErr(t, "GetPipeline", err, store.ErrNotFound)
	}},
	{"pipeline/list sorted without deleted", func(t *testing.T, s store.Store) {
		got, err := s.ListPipelines(ctx)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("empty ListPipelines = %#v, %v; want an empty non-nil slice", got, err)
		}
		for _, n := range []string{"c", "a", "d", "b"} {
			mustPut(t, s, pipe(n, "h"), store.AnyRevision)
		}
		if err := s.DeletePipeline(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		got, err = s.ListPipelines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "names", names(got), []string{"a", "b", "d"})
		equal(t, "a", got[0], mustGet(t, s, "a"))
	}},
	{"pipeline/delete", func(t *testing.T, s store.Store) {
		mustPut(t, s, pipe("orders", "h1"), store.AnyRevision)
		mustPut(t, s, pipe("orders", "h2"), store.AnyRevision)
		if err := s.DeletePipeline(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetPipeline(ctx, "orders")
		wantErr(t, "get deleted", err, store.ErrNotFound)
		wantErr(t, "delete again", s.DeletePipeline(ctx, "orders"), store.ErrNotFound)
		wantErr(t, "status of deleted", s.UpdatePipelineStatus(ctx, "orders", store.PipelineStatus{}), store.ErrNotFound)
		_, err = s.PutPipeline(ctx, pipe("orders", "h2"), 2)
		wantErr(t, "put deleted expecting its old revision", err, store.ErrConflict)
		// Re-applying continues the revisions, with a fresh status, even
		// with the hash it was deleted with.
		res := mustPut(t, s, pipe("orders", "h2"), store.NoRevision)
		want := pipe("orders", "h2")
		want.Revision = 3
		want.CreatedAt = want.AppliedAt
		want.Status = store.PipelineStatus{Phase: store.PhasePending}
		equal(t, "re-applied", res, store.PutResult{Pipeline: want, Created: true, Changed: true})
	}},
	{"pipeline/next revision is what the next put stores", func(t *testing.T, s store.Store) {
		next := func(what string, want int64) {
			t.Helper()
			got, err := s.NextRevision(ctx, "orders")
			if err != nil || got != want {
				t.Fatalf("NextRevision %s = %d, %v; want %d", what, got, err, want)
			}
		}
		next("of a name never applied", 1)
		for _, step := range []struct {
			what string
			do   func()
			want int64
		}{
			{"after the first put", func() { mustPut(t, s, pipe("orders", "h1"), store.AnyRevision) }, 2},
			{"after a change", func() { mustPut(t, s, pipe("orders", "h2"), store.AnyRevision) }, 3},
			{"after a no-op put", func() { mustPut(t, s, pipe("orders", "h2"), store.AnyRevision) }, 3},
			{"after a status update", func() {
				if err := s.UpdatePipelineStatus(ctx, "orders", store.PipelineStatus{ObservedRevision: 2}); err != nil {
					t.Fatal(err)
				}
			}, 3},
			{"after delete", func() {
				if err := s.DeletePipeline(ctx, "orders"); err != nil {
					t.Fatal(err)
				}
			}, 3},
		} {
			step.do()
			next(step.what, step.want)
		}
		// The put that follows a delete stores exactly what was announced,
		// whatever its hash.
		want, _ := s.NextRevision(ctx, "orders")
		if got := mustPut(t, s, pipe("orders", "h2"), store.NoRevision).Pipeline.Revision; got != want {
			t.Fatalf("revision after delete = %d, NextRevision said %d", got, want)
		}
		next("after the re-apply", want+1)
		if got, err := s.NextRevision(ctx, "payments"); err != nil || got != 1 {
			t.Fatalf("NextRevision of another name = %d, %v; want 1", got, err)
		}
	}},
	{"pipeline/status update never bumps revision", func(t *testing.T, s store.Store) {
		applied := mustPut(t, s, pipe("orders", "h1"), store.AnyRevision).Pipeline
		st := store.PipelineStatus{
			ObservedRevision: 1, Phase: store.PhaseFailed, Ready: false, LastError: "sink: connection refused",
			Conditions: []store.Condition{
				{Type: "Applied", Status: "True", Reason: "Valid", LastTransition: t0.Add(time.Second)},
				{Type: "Ready", Status: "False", Reason: "ComponentFailed", Message: "sink exited 1",
					LastTransition: t0.Add(2*time.Second + 5*time.Nanosecond).In(time.FixedZone("X", 3600))},
			},
		}
		for range 3 {
			if err := s.UpdatePipelineStatus(ctx, "orders", st); err != nil {
				t.Fatal(err)
			}
		}
		want := applied
		want.Status = st.Clone()
		got := mustGet(t, s, "orders")
		equal(t, "stored", got, want)
		if got.Status.Conditions[1].LastTransition.Location() != time.UTC {
			t.Errorf("condition time not normalised to UTC: %v", got.Status.Conditions[1].LastTransition)
		}
		wantErr(t, "missing", s.UpdatePipelineStatus(ctx, "nope", st), store.ErrNotFound)
	}},
	{"pipeline/records are copies", func(t *testing.T, s store.Store) {
		in := pipe("orders", "h1")
		res := mustPut(t, s, in, store.AnyRevision)
		in.Spec[0] = 'X'
		res.Pipeline.Spec[0] = 'Y'
		st := store.PipelineStatus{Conditions: []store.Condition{{Type: "Ready", Status: "True"}}}
		if err := s.UpdatePipelineStatus(ctx, "orders", st); err != nil {
			t.Fatal(err)
		}
		st.Conditions[0].Status = "False"
		got := mustGet(t, s, "orders")
		got.Spec[1] = 'Z'
		got.Status.Conditions[0].Type = "Changed"
		got = mustGet(t, s, "orders")
		if string(got.Spec) != string(pipe("orders", "h1").Spec) {
			t.Errorf("stored spec changed through a caller's slice: %q", got.Spec)
		}
		equal(t, "conditions", got.Status.Conditions, []store.Condition{{Type: "Ready", Status: "True"}})
	}},
	{"registrations", func(t *testing.T, s store.Store) {
		got, err := s.ListRegistrations(ctx, "")
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("empty ListRegistrations = %#v, %v; want an empty non-nil slice", got, err)
		}
		regs := []store.Registration{
			{ID: "orders.enrich", Pipeline: "orders", Component: "enrich", Name: "enricher", Version: "1.2.0",
				Description: "adds customer data", Role: "processor", Endpoint: "127.0.0.1:4001", Protocol: "grpc",
				InputTypes: []string{"order.created"}, OutputTypes: []string{"order.enriched"},
				Metadata: map[string]string{"team": "billing"}, RegisteredAt: t0, TTL: 15 * time.Second},
			{ID: "orders.audit", Pipeline: "orders", Component: "audit", Role: "sink", RegisteredAt: t0},
			{ID: "pay.src", Pipeline: "pay", Component: "src", Role: "source", RegisteredAt: t0},
			{ID: "loose", Role: "sink", RegisteredAt: t0},
		}
		for _, r := range regs {
			if err := s.PutRegistration(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			pipeline string
			want     []store.Registration
		}{
			{"", []store.Registration{regs[3], regs[1], regs[0], regs[2]}},
			{"orders", []store.Registration{regs[1], regs[0]}},
			{"pay", []store.Registration{regs[2]}},
			{"none", []store.Registration{}},
		} {
			got, err := s.ListRegistrations(ctx, tc.pipeline)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "pipeline "+tc.pipeline, got, tc.want)
		}
		// Replace, with a zero RegisteredAt meaning now.
		moved := regs[0]
		moved.Endpoint = "127.0.0.1:4999"
		moved.RegisteredAt = time.Time{}
		if err := s.PutRegistration(ctx, moved); err != nil {
			t.Fatal(err)
		}
		got, _ = s.ListRegistrations(ctx, "orders")
		if got[1].Endpoint != "127.0.0.1:4999" || time.Since(got[1].RegisteredAt) > time.Minute {
			t.Fatalf("replaced registration = %+v", got[1])
		}
		if err := s.DeleteRegistration(ctx, "orders.audit"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "delete again", s.DeleteRegistration(ctx, "orders.audit"), store.ErrNotFound)
		got, _ = s.ListRegistrations(ctx, "orders")
		if len(got) != 1 || got[0].ID != "orders.enrich" {
			t.Fatalf("after delete: %+v", got)
		}
		if err := s.PutRegistration(ctx, store.Registration{}); err == nil {
			t.Fatal("empty id accepted")
		}
		// Copies both ways.
		got[0].Metadata["team"] = "x"
		got[0].InputTypes[0] = "x"
		again, _ := s.ListRegistrations(ctx, "orders")
		if again[0].Metadata["team"] != "billing" || again[0].InputTypes[0] != "order.created" {
			t.Fatalf("stored registration changed through a returned map or slice: %+v", again[0])
		}
	}},
	{"runs/ids and newest first", func(t *testing.T, s store.Store) {
		for i := range 3 {
			r, err := s.StartRun(ctx, store.Run{Pipeline: "orders", Revision: 1, ID: 99, PID: 100 + i,
				StartedAt: t0.Add(time.Duration(i) * time.Second)}, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := store.Run{ID: int64(i + 1), Pipeline: "orders", Revision: 1, State: store.RunStarted,
				PID: 100 + i, StartedAt: t0.Add(time.Duration(i) * time.Second)}
			equal(t, "started", r, want)
		}
		// Each pipeline has its own sequence.
		r, err := s.StartRun(ctx, store.Run{Pipeline: "pay", StartedAt: t0.Add(1500 * time.Millisecond)}, 0)
		if err != nil || r.ID != 1 {
			t.Fatalf("first run of pay: %+v, %v", r, err)
		}
		for _, tc := range []struct {
			pipeline string
			limit    int
			want     []string
		}{
			{"orders", 0, []string{"orders/3", "orders/2", "orders/1"}},
			{"orders", 2, []string{"orders/3", "orders/2"}},
			{"orders", -1, []string{"orders/3", "orders/2", "orders/1"}},
			{"pay", 5, []string{"pay/1"}},
			{"none", 0, []string{}},
			{"", 0, []string{"orders/3", "pay/1", "orders/2", "orders/1"}},
			{"", 3, []string{"orders/3", "pay/1", "orders/2"}},
		} {
			got, err := s.ListRuns(ctx, tc.pipeline, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatalf("ListRuns(%q) returned nil, want a non-nil slice", tc.pipeline)
			}
			equal(t, fmt.Sprintf("ListRuns(%q, %d)", tc.pipeline, tc.limit), runIDs(got), tc.want)
		}
	}},
	{"runs/update", func(t *testing.T, s store.Store) {
		r, err := s.StartRun(ctx, store.Run{Pipeline: "orders", Revision: 2}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(r.StartedAt) > time.Minute || r.State != store.RunStarted {
			t.Fatalf("defaults not applied: %+v", r)
		}
		r.State = store.RunFailed
		r.Reason = "sink: exit status 1"
		r.ExitCode = 1
		r.EndedAt = r.StartedAt.Add(time.Second)
		r.Counters = map[string]int64{"events_in": 10, "events_out": 9, "errors": 1}
		if err := s.UpdateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.Counters["events_in"] = 0 // the store kept a copy
		got, err := s.ListRuns(ctx, "orders", 1)
		if err != nil {
			t.Fatal(err)
		}
		r.Counters["events_in"] = 10
		equal(t, "updated", got, []store.Run{r})
		if !got[0].State.Terminal() || store.RunStarted.Terminal() {
			t.Error("Terminal is wrong")
		}
		for _, missing := range []store.Run{
			{Pipeline: "orders", ID: 2}, {Pipeline: "nope", ID: 1},
		} {
			wantErr(t, fmt.Sprintf("update %s/%d", missing.Pipeline, missing.ID), s.UpdateRun(ctx, missing), store.ErrNotFound)
		}
		for _, bad := range []store.Run{{Pipeline: "orders"}, {ID: 1}} {
			if err := s.UpdateRun(ctx, bad); err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("UpdateRun(%+v) = %v, want a validation error", bad, err)
			}
		}
		if _, err := s.StartRun(ctx, store.Run{}, 0); err == nil {
			t.Error("StartRun without a pipeline accepted")
		}
	}},
	{"runs/pruned to keep", func(t *testing.T, s store.Store) {
		const keep = 100
		start := func(p string) store.Run {
			t.Helper()
			r, err := s.StartRun(ctx, store.Run{Pipeline: p}, keep)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		end := func(r store.Run) {
			t.Helper()
			r.State, r.EndedAt = store.RunCompleted, r.StartedAt.Add(time.Second)
			if err := s.UpdateRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(p string) []int64 {
			t.Helper()
			runs, err := s.ListRuns(ctx, p, 0)
			if err != nil {
				t.Fatal(err)
			}
			out := []int64{}
			for _, r := range runs {
				out = append(out, r.ID)
			}
			slices.Reverse(out)
			return out
		}
		span := func(from, to int64) []int64 {
			out := []int64{}
			for i := from; i <= to; i++ {
				out = append(out, i)
			}
			return out
		}
		// 105 runs that all end: the oldest 5 go, ids keep increasing.
		for i := range 105 {
			r := start("orders")
			if r.ID != int64(i+1) {
				t.Fatalf("run %d got id %d", i+1, r.ID)
			}
			end(r)
		}
		equal(t, "orders after 105 runs", ids("orders"), span(6, 105))
		// A run still running is never pruned: pay's run 1 outlives the
		// runs after it until it ends.
		first := start("pay")
		for range 104 {
			end(start("pay"))
		}
		equal(t, "pay after 105 runs, the first running", ids("pay"), append([]int64{1}, span(6, 105)...))
		end(first)
		if r := start("pay"); r.ID != 106 {
			t.Fatalf("run after pruning got id %d, want 106", r.ID)
		}
		equal(t, "pay after 106 runs", ids("pay"), span(7, 106))
		// A pruned run is gone for UpdateRun too; a kept one is there.
		wantErr(t, "update a pruned run", s.UpdateRun(ctx, store.Run{Pipeline: "orders", ID: 5, State: store.RunFailed}), store.ErrNotFound)
		if err := s.UpdateRun(ctx, store.Run{Pipeline: "orders", ID: 6, State: store.RunFailed}); err != nil {
			t.Fatalf("update a kept run: %v", err)
		}
		// keep <= 0 prunes nothing.
		for range 3 {
			if _, err := s.StartRun(ctx, store.Run{Pipeline: "orders", State: store.RunCompleted}, 0); err != nil {
				t.Fatal(err)
			}
		}
		equal(t, "orders after 3 unpruned runs", ids("orders"), span(6, 108))
		all, err := s.ListRuns(ctx, "", 0)
		if err != nil || len(all) != 203 {
			t.Fatalf("ListRuns of every pipeline: %d runs, %v; want 203", len(all), err)
		}
	}},
	{"runs/survive pipeline delete", func(t *testing.T, s store.Store) {
		mustPut(t, s, pipe("orders", "h1"), store.AnyRevision)
		if _, err := s.StartRun(ctx, store.Run{Pipeline: "orders", Revision: 1}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePipeline(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, pipe("orders", "h1"), store.AnyRevision)
		r, err := s.StartRun(ctx, store.Run{Pipeline: "orders", Revision: 2}, 0)
		if err != nil || r.ID != 2 {
			t.Fatalf("run after re-apply: %+v, %v; want id 2", r, err)
		}
		got, _ := s.ListRuns(ctx, "orders", 0)
		equal(t, "history", runIDs(got), []string{"orders/2", "orders/1"})
	}},
	{"runs/interrupt", func(t *testing.T, s store.Store) {
		var started []store.Run
		for i, p := range []string{"a", "b", "a"} {
			r, err := s.StartRun(ctx, store.Run{Pipeline: p, StartedAt: t0.Add(time.Duration(i) * time.Second)}, 0)
			if err != nil {
				t.Fatal(err)
			}
			started = append(started, r)
		}
		done := started[1]
		done.State, done.EndedAt = store.RunCompleted, t0.Add(time.Minute)
		if err := s.UpdateRun(ctx, done); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Hour)
		changed, err := store.InterruptRuns(ctx, s, "server restarted", at)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "changed", runIDs(changed), []string{"a/2", "a/1"})
		all, _ := s.ListRuns(ctx, "", 0)
		for _, r := range all {
			want := store.RunInterrupted
			if r.Pipeline == "b" {
				want = store.RunCompleted
			}
			if r.State != want || (want == store.RunInterrupted && (!r.EndedAt.Equal(at) || r.Reason != "server restarted")) {
				t.Errorf("run %s/%d: %+v", r.Pipeline, r.ID, r)
			}
		}
	}},
	{"concurrency/blind writers", func(t *testing.T, s store.Store) {
		const writers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					_, err := s.PutPipeline(ctx, pipe("orders", fmt.Sprintf("w%d-%d", w, i)), store.AnyRevision)
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := mustGet(t, s, "orders").Revision; got != writers*each {
			t.Fatalf("revision = %d, want %d: each distinct hash bumps exactly once", got, writers*each)
		}
	}},
	{"concurrency/compare and swap", func(t *testing.T, s store.Store) {
		const writers, each = 6, 8
		mustPut(t, s, pipe("orders", "start"), store.NoRevision)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for i := 0; i < each; {
					cur, err := s.GetPipeline(ctx, "orders")
					if err != nil {
						errs <- err
						return
					}
					_, err = s.PutPipeline(ctx, pipe("orders", fmt.Sprintf("w%d-%d", w, i)), cur.Revision)
					switch {
					case errors.Is(err, store.ErrConflict):
						continue // lost the race: read again
					case err != nil:
						errs <- err
						return
					}
					i++
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := mustGet(t, s, "orders").Revision; got != writers*each+1 {
			t.Fatalf("revision = %d, want %d: a lost update slipped through", got, writers*each+1)
		}
	}},
	{"concurrency/runs and registrations", func(t *testing.T, s store.Store) {
		const workers, each = 8, 15
		var wg sync.WaitGroup
		errs := make(chan error, workers*each*2)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					if _, err := s.StartRun(ctx, store.Run{Pipeline: "orders"}, 0); err != nil {
						errs <- err
					}
					reg := store.Registration{ID: fmt.Sprintf("c%d-%d", w, i), Pipeline: "orders"}
					if err := s.PutRegistration(ctx, reg); err != nil {
						errs <- err
					}
					if _, err := s.ListRuns(ctx, "", 5); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		runs, err := s.ListRuns(ctx, "orders", 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		want := []int64{}
		for i := workers * each; i >= 1; i-- {
			want = append(want, int64(i))
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("run ids = %v, want %d..1 without gaps or repeats", ids, workers*each)
		}
		regs, _ := s.ListRegistrations(ctx, "orders")
		if len(regs) != workers*each {
			t.Fatalf("%d registrations, want %d", len(regs), workers*each)
		}
	}},
	{"closed", func(t *testing.T, s store.Store) {
		mustPut(t, s, pipe("orders", "h1"), store.AnyRevision)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		calls := map[string]func() error{
			"PutPipeline":    func() error { _, err := s.PutPipeline(ctx, pipe("orders", "h2"), store.AnyRevision); return err },
			"GetPipeline":    func() error { _, err := s.GetPipeline(ctx, "orders"); return err },
			"NextRevision":   func() error { _, err := s.NextRevision(ctx, "orders"); return err },
			"ListPipelines":  func() error { _, err := s.ListPipelines(ctx); return err },
			"DeletePipeline": func() error { return s.DeletePipeline(ctx, "orders") },
			"UpdatePipelineStatus": func() error {
				return s.UpdatePipelineStatus(ctx, "orders", store.PipelineStatus{})
			},
			"PutRegistration":    func() error { return s.PutRegistration(ctx, store.Registration{ID: "x"}) },
			"DeleteRegistration": func() error { return s.DeleteRegistration(ctx, "x") },
			"ListRegistrations":  func() error { _, err := s.ListRegistrations(ctx, ""); return err },
			"StartRun":           func() error { _, err := s.StartRun(ctx, store.Run{Pipeline: "orders"}, 0); return err },
			"UpdateRun":          func() error { return s.UpdateRun(ctx, store.Run{Pipeline: "orders", ID: 1}) },
			"ListRuns":           func() error { _, err := s.ListRuns(ctx, "", 0); return err },
			"Close":              s.Close,
		}
		for name, call := range calls {
			wantErr(t, name, call(), store.ErrClosed)
		}
	}},
	{"canceled context", func(t *testing.T, s store.Store) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.PutPipeline(c, pipe("orders", "h1"), store.AnyRevision)
		wantErr(t, "PutPipeline", err, context.Canceled)
		_, err = s.ListRuns(c, "", 0)
		wantErr(t, "ListRuns", err, context.Canceled)
		_, err = s.NextRevision(c, "orders")
		wantErr(t, "NextRevision", err, context.Canceled)
		if _, err := s.GetPipeline(ctx, "orders"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a canceled put stored something: %v", err)
		}
	}},
}
